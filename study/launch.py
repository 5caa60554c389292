"""Launch (or continue, or resume) a hyperparameter study: Ray Tune trials, Optuna's sampler.

    python -m study.launch --smoke-test
    python -m study.launch --space quick --name q1 --num-samples 4 --data-root ../shared/data
    python -m study.launch --space default --name mnist-ue --num-samples 64 \\
        --objective ue_tiered:auroc --gpus-per-trial 0.25 --address auto --storage s3://b/studies
    python -m study.launch --preset fashionmnist --name fm --data-root ../shared/data
    python -m study.launch --name mnist-ue --resume          # after a crash or Ctrl+C
    optuna-dashboard studies/mnist-ue/optuna.journal          # the Optuna side, live
    python -m study.launch --space quick --name q1 --mlflow   # + MLflow (<study>/mlflow.db)
    python -m study.launch --space quick --name q1 --ray-table   # Ray's table, not the display

Running the same ``--name`` again continues (warm-starts) the same Optuna study with new trials;
each launch seeds its sampler anew (from ``--seed``, the launch count and a per-driver nonce,
recorded in ``study.json``), so it does not repeat earlier trials, while every trial's
``rounds/seed`` stays ``--seed``. ``--resume`` instead finishes the interrupted Tune run of the
study in ``--storage``/``--name`` (unfinished trials continue from their last finished round);
a copied or renamed study folder resumes into itself, never into the folder it came from.
Results: ``<storage>/<name>/results/{trials,rounds,ood}`` (Parquet, see :mod:`study.results`),
artifacts per trial, ``optuna.journal`` and ``study.json``.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ray import tune

from netinv.cli_errors import run_cli
from netinv.cli_logging import apply_logging_options
from netinv.config import Config
from study import layout, ray_compat, storage
from study import results as R
from study import spaces
from study.objective import Objective
from study.options import (LaunchError, Options, WatchOptions, check_space, parse_options,
                           parse_watch_options, preset_settings)
from study.resources import check_local_resources, check_resources, init_ray
from study.search import (StudySearch, journal_path, make_sampler, make_storage, new_nonce,
                          sampler_seed, upload_journal)
from study.watch import StudyReporter, check_mlflow, mlflow_callback, mlflow_uri

__all__ = ["LaunchError", "Options", "StudySearch", "build_tuner", "main", "parse_options", "run"]

log = logging.getLogger("study.launch")

MAX_FAILURES = 2  # Tune retries per trial (from its last checkpoint)
CHECKPOINTS_TO_KEEP = 2
ASHA_GRACE_ROUNDS = 2  # reports before ASHA may stop a trial: round 0 and round 1
ASHA_REDUCTION_FACTOR = 3
ASHA_MAX_T = 101  # reports of the longest possible trial: rounds/count <= 100, plus round 0
REPORT_EVERY_S = 15  # seconds between progress tables
LEADERBOARD_SIZE = 5
RECORD_TRIES = 5  # rereads of study.json when another driver wrote it at the same moment


def check_data(sample: dict[str, Any]) -> None:
    """Prepare the data of one sampled config on this node (fills the decoded cache)."""
    from netinv.data import DataUnavailableError
    from netinv.pipeline import prepare_data

    try:
        prepare_data(Config.from_flat(sample))
    except (DataUnavailableError, ValueError) as exc:
        raise LaunchError(f"the study's data is not usable: {exc}") from exc


# ----------------------------------------------------------------------------- study.json


def read_saved(study_dir: str) -> dict[str, Any] | None:
    """The study's ``study.json`` (None before the first launch), checked as far as the
    launcher reads it: a JSON object whose ``launches`` is a list."""
    saved = layout.read_study_file(study_dir)
    if saved is not None and not isinstance(saved.get("launches"), list):
        raise LaunchError(f"{layout.study_file(study_dir)} must hold a list 'launches', got "
                          f"{type(saved.get('launches')).__name__}.")
    return saved


def record_launch(opts: Options, fixed: dict[str, Any]) -> dict[str, Any]:
    """Append this launch (options, versions, sampler seed) to ``<study>/study.json``.

    Two drivers launching one study at once both append: a local study.json is read and
    written under a lock (:func:`study.layout.study_file_lock`); on object stores the file is
    reread after the write and the entry written again until it is there.

    Returns:
        The launch entry; ``sampler_seed`` seeds this driver's sampler and ``study_name`` is
        the Optuna study it continues (the study's first name, kept by copies).
    """
    nonce = new_nonce()
    options = dict(vars(opts))
    if "/" in opts.space or opts.space.endswith(".py"):
        options["space"] = str(Path(opts.space).expanduser().resolve())
    for _ in range(RECORD_TRIES):
        with layout.study_file_lock(opts.study_dir):
            launch = _append_launch(opts, fixed, options, nonce)
        again = layout.read_study_file(opts.study_dir) or {}
        if any(entry.get("nonce") == nonce for entry in again.get("launches", [])):
            return launch
    raise LaunchError(f"could not record this launch in {layout.study_file(opts.study_dir)}: "
                      f"other drivers kept rewriting it ({RECORD_TRIES} tries).")


def _append_launch(opts: Options, fixed: dict[str, Any], options: dict[str, Any],
                   nonce: str) -> dict[str, Any]:
    """Read study.json, append this launch's entry, write it back; returns the entry."""
    import optuna
    import ray
    import torch

    saved = read_saved(opts.study_dir) or {"name": opts.name, "launches": []}
    index = len(saved["launches"])
    launch = {
        "at": datetime.now(timezone.utc).isoformat(), "argv": sys.argv,
        "options": options, "fixed": fixed,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "ray": ray.__version__, "optuna": optuna.__version__},
        "launch_index": index, "nonce": nonce,
        "sampler_seed": sampler_seed(opts.seed, index, nonce),
        "study_name": saved.get("name", opts.name),
    }
    saved.update({"options": options, "space": options["space"],
                  "objective": opts.objective, "mode": opts.mode, "sampler": opts.sampler,
                  "seed": opts.seed})
    saved["launches"].append(launch)
    layout.write_study_file(opts.study_dir, saved)
    return launch


# ----------------------------------------------------------------------------- tuner


def latest_experiment(study_dir: str) -> str | None:
    """The newest Tune experiment folder of the study, or None."""
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(layout.tune_dir(study_dir))
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    infos = fs.get_file_info(pafs.FileSelector(path))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
    for name in reversed(names):
        candidate = storage.join(layout.tune_dir(study_dir), name)
        if tune.Tuner.can_restore(candidate):
            return candidate
    return None


def make_trainable(opts: Options) -> Any:
    """The trainable with the study's folder, name and objective, and the trial resources."""
    from study.trainable import trainable

    fn = tune.with_parameters(trainable, study_dir=opts.study_dir, study=opts.name,
                              objective=opts.objective, round0_cache=opts.round0_cache)
    return tune.with_resources(fn, {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial})


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"data/id": v}`` -> ``{"data": {"id": v}}`` (Tune's nested config shape)."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        section, _, field = key.partition("/")
        nested.setdefault(section, {})[field] = value
    return nested


def build_tuner(opts: Options, fn: Any, fixed: dict[str, Any], max_concurrent: int,
                launch: dict[str, Any], *, watch: WatchOptions | None = None) -> tune.Tuner:
    """The Tuner of a new launch: searcher, scheduler, run config, constant param space.

    Args:
        launch: This launch's ``study.json`` entry (:func:`record_launch`): its
            ``sampler_seed``, ``study_name`` and ``nonce``.
    """
    from ray.tune.schedulers import ASHAScheduler

    from study.trainable import StudyCallback

    # the searcher: Optuna's sampler over the space, stored in the study's journal
    if opts.sampler == "nsga2":  # both values of the same (last) round
        metric, mode = [R.ID_VAL_ACCURACY, "objective"], ["max", opts.mode]
    else:  # the trial's best round, as the Parquet trials row and the leaderboard rank it
        metric, mode = "best_objective", opts.mode
    searcher = StudySearch(space=fn, metric=metric, mode=mode,
                           sampler=make_sampler(opts.sampler, launch["sampler_seed"]),
                           study_name=launch["study_name"],
                           storage=make_storage(opts.study_dir, opts.name),
                           fixed_keys=tuple(fixed), base_keys=tuple(preset_settings(opts)))
    scheduler = None
    if opts.asha:
        # one report per round, round 0 included; max_t never cuts a trial's own rounds short
        scheduler = ASHAScheduler(time_attr="training_iteration", metric="objective",
                                  mode=opts.mode, max_t=ASHA_MAX_T,
                                  grace_period=ASHA_GRACE_ROUNDS,
                                  reduction_factor=ASHA_REDUCTION_FACTOR)
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                  num_samples=opts.num_samples,
                                  max_concurrent_trials=max_concurrent, reuse_actors=True)

    # what the user watches: the compact display (or Ray's full table), trackers
    watch = watch or WatchOptions()
    callbacks = [StudyCallback(opts.study_dir, opts.name)]
    if watch.mlflow is not None:
        callbacks.append(mlflow_callback(opts.study_dir, opts.name, watch.mlflow))
    reporter: Any = StudyReporter(study=opts.name, objective=opts.objective, mode=opts.mode,
                                  asha=opts.asha)
    if watch.ray_table:
        reporter = tune.CLIReporter(
            metric_columns={"round": "round", "objective": "val objective",
                            R.ID_VAL_ACCURACY: "ID val acc", "best_objective": "best"},
            parameter_columns=spaces.suggested_keys(fn)[:6],
            max_report_frequency=REPORT_EVERY_S, sort_by_metric=False)

    # the run: where Tune keeps its experiment state and checkpoints, how it retries; the
    # nonce keeps two drivers launched in the same second out of each other's folder
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_config = tune.RunConfig(
        name=f"{opts.name}-{stamp}-{launch['nonce']:08x}",
        storage_path=layout.tune_dir(opts.study_dir),
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
        callbacks=callbacks,
        progress_reporter=reporter,
        verbose=1,  # the reporter only: Ray's per-result and checkpoint lines need >= 2
    )

    # the param space: the preset under the launcher's fixed settings, constant for every trial
    return tune.Tuner(make_trainable(opts),
                      param_space=unflatten({**preset_settings(opts), **fixed}),
                      tune_config=tune_config, run_config=run_config)


def restore_tuner(opts: Options, experiment: str) -> tune.Tuner:
    """The interrupted Tune run ``experiment`` of the study, writing only into its folder.

    A study folder that was copied or renamed still holds a Tune state, a searcher and a
    callback that name the folder it came from (``study.json`` says which); they are pointed
    at this one, so resuming a copy leaves the original untouched.
    """
    saved = (layout.read_study_file(opts.study_dir) or {})["options"]
    origin = storage.join(saved["storage"], saved["name"])
    moved = origin != opts.study_dir
    if moved:
        experiment = _rehome_run(experiment, saved["name"], opts.name)
    print(f"resuming {experiment}")
    tuner = tune.Tuner.restore(experiment, trainable=make_trainable(opts),
                               resume_unfinished=True, resume_errored=True)
    if moved:
        searcher, callbacks = ray_compat.restored_parts(tuner)
        if not isinstance(searcher, StudySearch):
            raise LaunchError(f"--resume of a moved study needs its StudySearch searcher, got "
                              f"{type(searcher).__name__} in {experiment}.")
        searcher.rebind(make_storage(opts.study_dir, opts.name))
        for callback in callbacks:
            # by attribute, not class: a driver run as `python -m study.launch` before the
            # callback moved to study.trainable pickled its class by value
            if hasattr(callback, "study_dir"):
                callback.study_dir, callback.study = opts.study_dir, opts.name
            elif _logs_to_default_mlflow_of(callback, origin):  # the copy has its own copy
                callback.tracking_uri = mlflow_uri(opts.study_dir, None)
        print(f"resuming a copy of {origin}: writing only into {opts.study_dir}")
    return tuner


def _logs_to_default_mlflow_of(callback: Any, study_dir: str) -> bool:
    """Whether ``callback`` is an MLflow callback writing to ``study_dir``'s own
    ``mlflow.db`` (the ``--mlflow`` default), which a copied study folder holds a copy of."""
    uri = getattr(callback, "tracking_uri", None)
    if not uri or not storage.is_local(study_dir):
        return False
    return uri == mlflow_uri(study_dir, None)


def add_mlflow_on_resume(tuner: tune.Tuner, opts: Options, uri: str | None) -> None:
    """``--mlflow`` given with ``--resume``: log the resumed trials to MLflow too, unless the
    run was launched with ``--mlflow`` (its saved callback already logs them). Added on a
    resume, the callback lasts for this resume only (Tune saves a run's callbacks when it is
    first launched), so a later ``--resume`` needs ``--mlflow`` again."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    try:
        _, callbacks = ray_compat.restored_parts(tuner)
    except ValueError:  # Ray Client: the tuner lives in a remote actor
        print("--mlflow: through Ray Client (ray://) MLflow logging cannot be added to a "
              "resumed run; it keeps the callbacks it was launched with")
        return
    if any(isinstance(c, MLflowLoggerCallback) for c in callbacks):
        print("--mlflow: this study was launched with --mlflow; its MLflow logging continues")
        return
    ray_compat.add_callback(tuner, mlflow_callback(opts.study_dir, opts.name, uri))
    print("--mlflow: the resumed trials also log to MLflow (those that finished before the "
          "interruption do not; give --mlflow again on a later --resume)")


def _rehome_run(experiment: str, old_name: str, name: str) -> str:
    """Make a copied Tune run the copy's own: named after it (Tune keys its driver-side files
    by run name, so the original's run would share them) and creating new trials in it."""
    fs, path = storage.filesystem(experiment)
    parent, _, run_name = path.rstrip("/").rpartition("/")
    if storage.is_local(experiment) and run_name.startswith(f"{old_name}-"):
        renamed = f"{name}-{run_name[len(old_name) + 1:]}"
        fs.move(path, f"{parent}/{renamed}")
        experiment = storage.join(experiment.rstrip("/").rpartition("/")[0], renamed)
    ray_compat.rehome_search_state(experiment)
    return experiment


# ----------------------------------------------------------------------------- leaderboard


def leaderboard(study_dir: str, objective: str, n: int = LEADERBOARD_SIZE) -> Any:
    """Top ``n`` trials as ``study.analyze`` ranks them (best val round, earliest on ties),
    with the objective's metric on test at that round."""
    import pandas as pd

    from study import tables

    try:
        trials, rounds, ood = tables.load_trials(study_dir)
    except ValueError:  # nothing written yet
        return pd.DataFrame()
    goal = Objective.parse(objective)
    board = tables.leaderboard(trials, tables.round_table(rounds, ood, goal), goal).head(n)
    test = f"test_{goal.metric}_mean"
    columns = [R.TRIAL_ID, "optuna_number", "status", "rounds_done", "best_round",
               "val_objective", test, R.ID_TEST_ACCURACY]
    return board[columns].rename(columns={test: "test_objective"})


# ----------------------------------------------------------------------------- main


def run(opts: Options, *, watch: WatchOptions | None = None) -> Any:
    """Validate everything, then start/join Ray and fit; returns Tune's ResultGrid.

    ``watch`` (display and trackers) applies to new launches; a ``--resume`` keeps the
    reporter and callbacks its Tune run was saved with, and adds MLflow logging when
    ``watch.mlflow`` is set and the run has none.
    """
    # everything that can be checked without Ray, first; a bad study.json fails here
    if watch is not None and watch.mlflow is not None:
        check_mlflow(opts.study_dir, watch.mlflow)
    check_local_resources(opts)
    read_saved(opts.study_dir)
    if opts.resume:
        # re-import a user's space so the pickled searcher finds it by name
        try:
            spaces.load_space(opts.space)
        except spaces.SpaceError as exc:
            raise LaunchError(str(exc)) from exc
        experiment = latest_experiment(opts.study_dir)
        if experiment is None:
            raise LaunchError(f"--resume found no Tune run to restore under "
                              f"{layout.tune_dir(opts.study_dir)}.")
    else:
        fn, fixed, samples = check_space(opts)
        make_sampler(opts.sampler, opts.seed)
        if opts.address is None:
            check_data(samples[0])
        launch = record_launch(opts, fixed)

    started = init_ray(opts)
    try:
        fits = check_resources(opts)
        # the classic output engine: the only one that uses our reporter (the newer one
        # ignores it and prints a line per result and checkpoint)
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        # Tune saves its experiment state whenever a trial has checkpointed CHECKPOINTS_TO_KEEP
        # times since the last save, and warns (5 lines) when that happens twice within 5 s:
        # every few seconds in a study of short trials, for a save that costs milliseconds
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        if opts.resume:
            tuner = restore_tuner(opts, experiment)
            if watch is not None and watch.mlflow is not None:
                add_mlflow_on_resume(tuner, opts, watch.mlflow)
        else:
            tuner = build_tuner(opts, fn, fixed, opts.max_concurrent or fits, launch,
                                watch=watch)
        print(f"study {opts.name}: results in {layout.results_dir(opts.study_dir)}, Optuna "
              f"storage {journal_path(opts.study_dir, opts.name)}")
        grid = tuner.fit()
    finally:
        upload_journal(opts.study_dir, opts.name)
        if started:
            import ray

            ray.shutdown()
    board = leaderboard(opts.study_dir, opts.objective)
    print(f"\ntop {LEADERBOARD_SIZE} by val {opts.objective} ({opts.mode}):")
    print(board.to_string(index=False) if len(board) else "(no finished rounds)")
    return grid


def _main(argv: Sequence[str] | None) -> int:
    argv = None if argv is None else list(argv)
    opts = parse_options(argv, __doc__)
    watch, args = parse_watch_options(argv)
    apply_logging_options(args, fmt="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    run(opts, watch=watch)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with one ``error:`` line on an invalid option, space,
    study folder or data (see :func:`netinv.cli_errors.run_cli`)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
