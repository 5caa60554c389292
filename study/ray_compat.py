"""Every use of Ray's private names in the study layer, in one place.

Checked against Ray 2.60.0 (``constraints.txt`` pins it). When Ray is upgraded, this file is the
one to re-read against Ray's source; ``tests/study/test_ray_compat.py`` exercises each function.

- ``ray.autoscaler._private.util.prepare_config`` / ``validate_config``: what ``ray up`` runs on a
  cluster config before it asks the cloud anything (Ray has no public offline checker).
- ``OptunaSearch``'s attributes ``_ot_study``, ``_ot_trials``, ``_completed_trials``,
  ``_storage``: the Optuna study and the trials a searcher has handed out (no public accessor).
- ``Tuner._local_tuner`` and its ``_tune_config``: the searcher and the callbacks that
  ``Tuner.restore`` unpickled, to point them at a moved study folder before ``fit``, and its
  run config's callbacks list, to add MLflow logging on ``--resume --mlflow``
  (:func:`add_callback`).
- Elsewhere, ``study.mlflow_tracking`` subclasses ``MLflowLoggerCallback`` and reads its
  ``_trial_runs`` (trial -> MLflow run id) and ``mlflow_util._get_client()``.
- The search generator's saved state (``search_gen_state-*.json``, cloudpickle) and the
  ``StorageContext`` fields ``storage_filesystem``, ``storage_fs_path`` and
  ``experiment_dir_name`` in its experiment spec: Tune re-homes the trials of a moved experiment
  (``Trial.set_storage``) but creates the trials it adds from this spec, which still names the
  old folder.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import Any

from study import storage

RAY_VERSION_CHECKED = "2.60.0"


# ----------------------------------------------------------------------------- cluster config


def prepare_and_validate(raw: dict[str, Any]) -> dict[str, Any]:
    """Ray's offline checks of a cluster launcher config, as ``ray up`` runs them first.

    ``prepare_config`` merges the provider's ``defaults.yaml``; ``validate_config`` checks the
    result against Ray's JSON schema (unknown or misspelled keys, node types without
    ``resources``, non-integer resources).

    Args:
        raw: The config as ``yaml.safe_load`` read it; not modified.

    Returns:
        The prepared config (what the autoscaler on the head reads).

    Raises:
        jsonschema.ValidationError: The schema refuses it; the message names the key.
        ValueError: ``prepare_config`` refuses it.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


# ----------------------------------------------------------------------------- OptunaSearch


def optuna_study(searcher: Any) -> Any:
    """The ``optuna.Study`` an ``OptunaSearch`` asks and tells."""
    return searcher._ot_study


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """Tune trial id -> the ``optuna.Trial`` the searcher handed out for it."""
    return searcher._ot_trials


def optuna_trial(searcher: Any, trial_id: str) -> Any | None:
    """The ``optuna.Trial`` behind Tune trial ``trial_id``; None when the searcher has none."""
    return searcher._ot_trials.get(trial_id)


def is_told(searcher: Any, trial_id: str) -> bool:
    """Whether the searcher already told Optuna how ``trial_id`` ended."""
    return trial_id in searcher._completed_trials


def mark_told(searcher: Any, trial_id: str) -> None:
    """Record that Optuna was told how ``trial_id`` ended (the searcher then ignores it)."""
    searcher._completed_trials.add(trial_id)


def set_optuna_study(searcher: Any, storage: Any, study: Any, trials: dict[str, Any]) -> None:
    """Point the searcher at ``study`` in ``storage``, with its handed-out ``trials``."""
    searcher._storage = storage
    searcher._ot_study = study
    searcher._ot_trials = trials


# ----------------------------------------------------------------------------- Tuner.restore


def _local_tuner(tuner: Any) -> Any:
    """The driver-side ``TunerInternal`` of ``tuner``; ValueError through Ray Client."""
    internal = getattr(tuner, "_local_tuner", None)
    if internal is None:
        raise ValueError("a moved or renamed study can be resumed only by a driver on the "
                         "cluster (--address auto), not through Ray Client (ray://).")
    return internal


def restored_parts(tuner: Any) -> tuple[Any, list[Any]]:
    """(the search algorithm, the callbacks) of a tuner made by ``Tuner.restore``.

    Raises:
        ValueError: The tuner runs through Ray Client (``ray://``), where these objects live
            in a remote actor and cannot be changed from the driver.
    """
    internal = _local_tuner(tuner)
    return internal._tune_config.search_alg, list(internal.get_run_config().callbacks or [])


def add_callback(tuner: Any, callback: Any) -> None:
    """Append ``callback`` to the callbacks a ``Tuner.restore`` tuner will run with.

    Raises:
        ValueError: As :func:`restored_parts` (Ray Client).
    """
    run_config = _local_tuner(tuner).get_run_config()
    run_config.callbacks = [*(run_config.callbacks or []), callback]


def rehome_search_state(experiment: str) -> int:
    """Point the saved search state of a copied Tune experiment at ``experiment`` itself.

    Args:
        experiment: The copy's experiment folder (``<study>/ray/<run>``), a path or URI.

    Returns:
        How many state files were rewritten (0 when the run saved none yet).
    """
    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle
    from ray.tune.search.search_generator import SearchGenerator

    fs, path = storage.filesystem(experiment)
    parent, _, name = path.rstrip("/").rpartition("/")
    pattern = SearchGenerator.CKPT_FILE_TMPL.format("*")
    rewritten = 0
    for info in fs.get_file_info(pafs.FileSelector(path)):
        if info.type != pafs.FileType.File or not fnmatch.fnmatch(info.base_name, pattern):
            continue
        uri = storage.join(experiment, info.base_name)
        state = cloudpickle.loads(storage.get_bytes(uri))
        spec = state["experiment"].spec
        moved = copy.copy(spec["storage"])
        moved.storage_filesystem, moved.storage_fs_path = fs, parent
        moved.experiment_dir_name = name
        spec["storage"] = moved
        storage.put_bytes(uri, cloudpickle.dumps(state))
        rewritten += 1
    return rewritten
