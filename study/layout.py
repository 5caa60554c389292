"""The one owner of a study folder's layout: every file name, and the one reader of study.json.

Under ``<storage>/<study>/`` (``storage`` a local path or a ``pyarrow.fs`` URI such as
``s3://bucket/prefix``)::

    study.json                                    launches: options, versions, seeds (below)
    optuna.journal                                Optuna's journal storage (optuna-dashboard)
    ray/<name>-<UTC time>-<nonce>/                Ray Tune experiments (Tuner.restore)
    results/trials/<trial_id>.parquet             one row per trial, rewritten on each change
    results/rounds/<trial_id>/round-<r>.parquet   one row per finished round
    results/ood/<trial_id>/round-<r>.parquet      one row per (OOD set, split, score) and round
    artifacts/<trial_id>/grid-round-<r>.png       the round's inverted images
    artifacts/<trial_id>/state.pt                 RoundState of the last finished round
    artifacts/<trial_id>/best-state.pt            RoundState of the best val round so far
    artifacts/<trial_id>/failure.json             a deterministic failure; retries re-raise it
    artifacts/<trial_id>/worker.json              pid and node of the process running the trial
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from study import storage

STUDY_FILE = "study.json"
JOURNAL_FILE = "optuna.journal"
TUNE_DIR = "ray"  # Tune experiments live in <study>/ray/<name>-<UTC time>-<nonce>
RESULTS_DIR = "results"
ARTIFACTS_DIR = "artifacts"
STATE_FILE = "state.pt"  # the RoundState inside each Tune checkpoint and the artifact folder
BEST_STATE_FILE = "best-state.pt"  # the RoundState of the trial's best val round so far
FAILURE_FILE = "failure.json"  # marks a deterministic failure; retries re-raise at once
WORKER_FILE = "worker.json"  # pid and node of the process running the trial now


def study_file(study_dir: str) -> str:
    return storage.join(study_dir, STUDY_FILE)


def journal_file(study_dir: str) -> str:
    return storage.join(study_dir, JOURNAL_FILE)


def tune_dir(study_dir: str) -> str:
    return storage.join(study_dir, TUNE_DIR)


def results_dir(study_dir: str, table: str | None = None) -> str:
    """``results/`` or one table's folder under it."""
    return storage.join(study_dir, RESULTS_DIR, *([table] if table else []))


def trial_uri(study_dir: str, trial_id: str) -> str:
    return storage.join(study_dir, RESULTS_DIR, "trials", f"{trial_id}.parquet")


def round_uri(study_dir: str, table: str, trial_id: str, round_index: int) -> str:
    return storage.join(study_dir, RESULTS_DIR, table, trial_id, f"round-{round_index}.parquet")


def artifact_uri(study_dir: str, trial_id: str, name: str) -> str:
    return storage.join(study_dir, ARTIFACTS_DIR, trial_id, name)


def grid_name(round_index: int) -> str:
    """File name of a round's inverted-image grid in the trial's artifact folder."""
    return f"grid-round-{round_index}.png"


def read_study_file(study_dir: str) -> dict[str, Any] | None:
    """The study's ``study.json`` as a dict; None when the study has none yet.

    Raises:
        ValueError: The file exists but is not a JSON object (truncated, edited, another
            program's file), naming the file.
    """
    data = storage.get_bytes(study_file(study_dir))
    if data is None:
        return None
    try:
        saved = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{study_file(study_dir)} must be a JSON object written by "
                         f"study.launch, but it does not parse: {err}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{study_file(study_dir)} must be a JSON object written by "
                         f"study.launch, got a {type(saved).__name__}.")
    return saved


def write_study_file(study_dir: str, saved: dict[str, Any]) -> None:
    """Replace ``study.json`` atomically."""
    storage.put_bytes(study_file(study_dir), json.dumps(saved, indent=2).encode())


@contextlib.contextmanager
def study_file_lock(study_dir: str) -> Iterator[None]:
    """Hold an exclusive lock on a local study's ``study.json`` for a read-modify-write, so two
    drivers launching one study at once cannot lose each other's entry (the kernel drops the
    lock if a driver dies). Object stores have no lock: there the caller's reread-and-retry
    is all there is.
    """
    if not storage.is_local(study_dir):
        yield
        return
    os.makedirs(study_dir, exist_ok=True)
    fd = os.open(os.path.join(study_dir, f".{STUDY_FILE}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
