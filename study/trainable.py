"""One Ray Tune trial: a netinv run whose every round is reported, checkpointed and written.

Reads like Ray's ``doc_code/trial_checkpoint.py``: ``tune.get_checkpoint()`` once at the top
(resume at the saved round + 1), then one ``tune.report(metrics, checkpoint=...)`` per round.
Method logic stays in :func:`netinv.pipeline.run_rounds`; this file only wires it to Tune and
to the study's Parquet tables (:mod:`study.results`).

Data: each trial calls :func:`netinv.data.prepare`, which decodes a dataset once per node into
its on-disk cache (``$NETINV_CACHE``) and later only loads the decoded arrays; a process-level
memo keeps the last prepared data, so a reused actor (``reuse_actors=True``) skips even that.
This is preferred over ``tune.with_parameters(data=...)`` because the driver may be a thin
client without the data, a space may search data settings (one object per setting would be
needed), and the cache needs no object-store memory on the head node.

Round 0: with ``round0_cache`` (the launcher's default; ``--no-round0-cache`` turns it off) a
trial loads round 0 from :class:`netinv.round0_cache.Round0Cache` when another trial of its
node with the same round-0 settings stored it, and still writes and reports it as its own
(its rounds row says ``round0_cached``); its later rounds equal a run that trained it.

Failures: a NaN/inf loss (:class:`netinv.inversion.NonFiniteLossError`) is deterministic, so the
trial is written as failed, a ``failure.json`` marker goes into its artifact folder, and the
exception is raised; Tune's retries (``FailureConfig``) then find the marker and re-raise at once
instead of recomputing the same NaN. A CUDA out-of-memory error may come from a neighbour on a
shared GPU, so it is written as the failure reason and raised without a marker: Tune retries it
from the last checkpoint. Either way the searcher hears ``error=True`` and Optuna records FAIL.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import socket
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

import netinv
from netinv.config import Config
from netinv.data import PreparedData
from netinv.inversion import NonFiniteLossError
from netinv.inference import cuda_memory, resolve_device, uses_bf16
from netinv.pipeline import prepare_data, run_rounds
from netinv.records import flat_ood_metrics
from netinv.round0_cache import Round0Cache
from netinv.state import RoundState
from study import layout, storage
from study import results as R
from study.objective import Objective

STUDY_KEY = "study"  # config section the searcher adds: optuna_number, searched_params
RAY_CHECKPOINT_LOGGER = "ray.train._internal.storage"  # logs one line per saved checkpoint

_DATA_MEMO: dict[Any, PreparedData] = {}  # the last prepared data of this process


class TrialFailedError(RuntimeError):
    """A trial failed in a way a retry cannot fix (e.g. a NaN loss); see its failure.json."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _prepared(config: Config) -> PreparedData:
    """Prepare the data for ``config`` (node cache on disk), memoised for this process."""
    key = (config.data, config.rounds.seed)  # everything prepare_data reads; frozen, hashable
    if key not in _DATA_MEMO:
        _DATA_MEMO.clear()  # keep one data set per process
        _DATA_MEMO[key] = prepare_data(config)
    return _DATA_MEMO[key]


def _environment(config: Config, cpus: float, gpus: float) -> dict[str, Any]:
    """Trial-row columns that say where and with what the trial ran."""
    ctx = ray.get_runtime_context()
    device = resolve_device(config.rounds.device)
    return {
        R.NODE_ID: ctx.get_node_id(),
        R.NODE_IP: ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        R.CPUS: float(cpus),
        R.GPUS: float(gpus),
        "device": str(device),
        # the precision in use: asked for (rounds/amp) and paying on this node's hardware
        "bf16": uses_bf16(device, config.rounds.amp),
        "torch_version": torch.__version__,
        "ray_version": ray.__version__,
        # the installed version without importing optuna (0.2 s of every trial actor's start)
        "optuna_version": metadata.version("optuna"),
        "netinv_version": netinv.__version__,
        "python_version": platform.python_version(),
    }


def _set_threads_and_memory(config: Config, cpus: float, gpus: float) -> None:
    """Torch threads = the trial's CPU share; on CUDA cap memory at the GPU fraction and
    start this trial's peak-memory count afresh (a reused actor ran other trials before)."""
    torch.set_num_threads(max(1, int(cpus)))  # Ray sets OMP_NUM_THREADS, torch ignores it
    device = resolve_device(config.rounds.device)
    if device.type == "cuda" and 0 < gpus < 1:
        # logical GPU fractions do not isolate memory: keep this process inside its share
        torch.cuda.set_per_process_memory_fraction(gpus, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def trainable(config: dict[str, Any], *, study_dir: str, study: str, objective: str,
              round0_cache: bool = True) -> None:
    """Run one trial: resume from Tune's checkpoint if any, then report every round.

    Args:
        config: Tune's trial config: Config sections as nested dicts (Tune unflattens the
            ``/`` keys) plus ``"study"`` (optuna_number, searched_params) from the searcher.
        study_dir: ``<storage>/<study>``, absolute path or URI (trials run in their own cwd).
        study: The study's name.
        objective: ``"score:metric"`` evaluated on the val split (e.g. ``"ue_tiered:auroc"``).
        round0_cache: Share round 0 with the other trials of this node through
            :class:`netinv.round0_cache.Round0Cache` (``$NETINV_CACHE/round0``); False =
            every trial computes its own.

    Raises:
        TrialFailedError: A NaN/inf loss, now or in an earlier attempt of this trial.
        torch.OutOfMemoryError: CUDA ran out of memory (Tune retries from the checkpoint).
    """
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    # Ray logs "Checkpoint successfully created at: ..." here once per round; the launcher's
    # display already shows every round (study.watch)
    logging.getLogger(RAY_CHECKPOINT_LOGGER).setLevel(logging.WARNING)
    meta = dict(config.get(STUDY_KEY) or {})
    run_config = Config.from_flat({k: v for k, v in config.items() if k != STUDY_KEY})
    resources = ctx.get_trial_resources().required_resources
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    _set_threads_and_memory(run_config, cpus, gpus)

    # resume from the last finished round, if Tune restored a checkpoint
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = RoundState.load(Path(folder) / layout.STATE_FILE)

    failure = storage.get_bytes(layout.artifact_uri(study_dir, trial_id, layout.FAILURE_FILE))
    if failure is not None:  # a deterministic failure of an earlier attempt: do not recompute
        raise TrialFailedError(json.loads(failure)["reason"])

    writer = _TrialWriter(study_dir, study, trial_id, objective, run_config, meta,
                          _environment(run_config, cpus, gpus),
                          resumed_from=None if state is None else state.round)
    data = _prepared(run_config)
    writer.classes = data.classes
    try:
        if state is not None and state.round >= run_config.rounds.count:
            writer.on_round(state.records[-1], state)  # finished before the interruption
            return
        run_rounds(run_config, data=data, state=state, on_round=writer.on_round,
                   round0_cache=Round0Cache() if round0_cache else None)
    except NonFiniteLossError as exc:
        reason = f"NonFiniteLossError: {exc}"
        storage.put_bytes(layout.artifact_uri(study_dir, trial_id, layout.FAILURE_FILE),
                          json.dumps({"reason": reason, "at": _now().isoformat()}).encode())
        writer.failed(reason)
        raise TrialFailedError(reason) from exc
    except torch.OutOfMemoryError as exc:
        writer.failed(f"OutOfMemoryError: {str(exc).splitlines()[0]}")
        raise


class _TrialWriter:
    """One attempt of a trial: its Parquet row, worker.json, and per round the rows, the
    grid, the states and Tune's report with the checkpoint (in that order)."""

    def __init__(self, study_dir: str, study: str, trial_id: str, objective: str,
                 run_config: Config, meta: dict[str, Any], env: dict[str, Any],
                 resumed_from: int | None) -> None:
        self.study_dir, self.study, self.trial_id = study_dir, study, trial_id
        self.objective, self.goal = objective, Objective.parse(objective)
        self.rounds_total = run_config.rounds.count
        self.env, self.resumed_from = env, resumed_from
        self.device = resolve_device(run_config.rounds.device)
        self.classes: list[str] = []
        previous = R.read_trial(study_dir, trial_id) or {}
        self.attempt = int(previous.get("attempts") or 0)  # 0-based index of this attempt
        self.row = {
            R.STUDY: study, R.TRIAL_ID: trial_id, "optuna_number": meta.get("optuna_number"),
            "status": R.RUNNING, "failure_reason": None, "seed": run_config.rounds.seed,
            "rounds_done": previous.get("rounds_done"), "attempts": self.attempt + 1,
            "objective_name": objective, R.OBJECTIVE: previous.get(R.OBJECTIVE),
            "best_round": previous.get("best_round"),
            "started_at": previous.get("started_at") or _now(), "ended_at": None,
            "wall_s": None, **env, "searched_params": meta.get("searched_params"),
            **R.config_row(run_config),
        }
        R.write_trial(study_dir, self.row)
        self._put(layout.WORKER_FILE, json.dumps({
            "pid": os.getpid(), "hostname": env["hostname"], R.NODE_IP: env[R.NODE_IP],
            "attempt": self.attempt, "resumed_from_round": resumed_from}).encode())

    def _put(self, name: str, data: bytes) -> None:
        storage.put_bytes(layout.artifact_uri(self.study_dir, self.trial_id, name), data)

    def on_round(self, record: dict[str, Any], round_state: RoundState) -> None:
        """Write one finished round, then report it to Tune with its checkpoint."""
        value = self.goal.value(record)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the objective {self.objective} is {value} in round "
                                     f"{record['round']}")
        r = record["round"]
        # the round's rows and picture first, then the trial row, then Tune's checkpoint
        R.write_round(self.study_dir, study=self.study, trial_id=self.trial_id, record=record,
                      objective=value,
                      extra={**{k: self.env[k] for k in R.PLACEMENT_FIELDS},
                             R.ATTEMPT: self.attempt, R.RESUMED_FROM_ROUND: self.resumed_from})
        if round_state.grid is not None:
            from netinv.plots import save_grid

            with tempfile.TemporaryDirectory() as tmp:
                png = Path(tmp) / "grid.png"
                save_grid(round_state.grid, self.classes, png,
                          title=f"{self.trial_id} round {r}")
                self._put(layout.grid_name(r), png.read_bytes())
        improved = self.goal.better(value, self.row[R.OBJECTIVE])  # ties keep the earlier round
        if improved:
            self.row.update({R.OBJECTIVE: value, "best_round": r})
        self.row["rounds_done"] = r
        with tempfile.TemporaryDirectory() as tmp:
            round_state.save(Path(tmp) / layout.STATE_FILE)
            state_bytes = (Path(tmp) / layout.STATE_FILE).read_bytes()
            self._put(layout.STATE_FILE, state_bytes)
            if improved:  # the analysis exports the detector of the best val round
                self._put(layout.BEST_STATE_FILE, state_bytes)
            R.write_trial(self.study_dir, self.row)
            metrics = {
                "objective": value,
                R.ID_VAL_ACCURACY: record[R.ID_VAL_ACCURACY],
                "round": r,
                "rounds_total": self.rounds_total,
                R.GARBAGE_SIZE: record[R.GARBAGE_SIZE],
                "best_objective": self.row[R.OBJECTIVE],
                **flat_ood_metrics(record),  # per OOD set, for trackers (MLflow, TensorBoard)
                **cuda_memory(self.device, self.env[R.GPUS]),  # CUDA only (gpu_check reads it)
            }
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def failed(self, reason: str) -> None:
        """Write the trial row as failed with ``reason``."""
        ended = _now()
        self.row.update({"status": R.FAILED, "failure_reason": reason, "ended_at": ended,
                         "wall_s": (ended - self.row["started_at"]).total_seconds()})
        R.write_trial(self.study_dir, self.row)
        print(f"trial {self.trial_id} failed: {reason}", file=sys.stderr)


def finish_trial(study_dir: str, trial_id: str, *, status: str, reason: str | None = None,
                 config: dict[str, Any] | None = None, study: str | None = None) -> None:
    """Write a trial's final status (driver side); keeps the row the trial wrote.

    Args:
        status: One of ``results.STATUSES`` other than running.
        reason: Failure reason; None keeps the one the trial wrote.
        config: Tune's trial config, used only when the trial never wrote its row.
    """
    row = R.read_trial(study_dir, trial_id)
    if row is None:
        row = {R.TRIAL_ID: trial_id, R.STUDY: study, "attempts": 0}
        if config is not None:
            meta = dict(config.get(STUDY_KEY) or {})
            row["optuna_number"] = meta.get("optuna_number")
            row["searched_params"] = meta.get("searched_params")
            try:
                flat = Config.from_flat({k: v for k, v in config.items() if k != STUDY_KEY})
                row.update(R.config_row(flat))
                row["seed"] = flat.rounds.seed
            except (KeyError, TypeError, ValueError):
                pass
    ended = _now()
    row["status"] = status
    if reason is not None and (status == R.FAILED and not row.get("failure_reason")):
        row["failure_reason"] = reason
    if status != R.FAILED:
        row["failure_reason"] = None
    row["ended_at"] = ended
    if row.get("started_at") is not None:
        row["wall_s"] = (ended - row["started_at"]).total_seconds()
    R.write_trial(study_dir, row)


class StudyCallback(tune.Callback):
    """Writes each trial's final status into its Parquet row (driver side).

    It lives here, not in the launcher, so that Tune pickles it by reference (a class of the
    ``__main__`` module, as ``python -m study.launch`` runs it, is pickled by value).

    completed: all rounds ran; stopped: ASHA ended it early; failed: an error after all
    retries, with the reason the trial wrote (or Tune's error text when it could not).
    """

    def __init__(self, study_dir: str, study: str) -> None:
        self.study_dir = study_dir
        self.study = study

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        done, total = result.get("round"), result.get("rounds_total")
        status = R.STOPPED if (done is None or total is None or done < total) else R.COMPLETED
        finish_trial(self.study_dir, trial.trial_id, status=status, config=trial.config,
                     study=self.study)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        finish_trial(self.study_dir, trial.trial_id, status=R.FAILED,
                     reason=_error_text(trial), config=trial.config, study=self.study)


def _error_text(trial: Any) -> str:
    path = trial.error_file
    if path and os.path.exists(path):
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        if errors:
            return errors[-1][:500]
        if lines:
            return lines[-1][:500]
    return "the trial failed (see Tune's error.txt)"
