"""study.launch end to end on a real local Ray instance, real Optuna journal, real Parquet.

One Ray instance serves the whole module (2 CPUs, 1 logical GPU so that fractional-GPU
scheduling is exercised on a CPU machine). Trials use the ``quick`` space or small user spaces
written to tmp_path, on the real data under ``data_root``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from netinv.config import Config
from study import launch
from study import layout
from study import results as R

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240  # longest any one study here may take before the test gives up

# the quick space's settings, for user spaces that need other values (slower rounds, NaN)
QUICK_CONSTANTS = """{
    "data/id": "mnist", "data/ood": ["fashionmnist", "cifar10"], "data/train_limit": 3000,
    "data/test_limit": 1000, "data/id_val_size": 500, "classifier/width": 8,
    "inversion/width": 8, "inversion/batch_size": 32, "inversion/samples_per_round": 300,
    "garbage/noise_count": 300, "rounds/eval_batch_size": 1024,
}"""


def _space_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(f'"""Test space {name}."""\n\nQUICK = {QUICK_CONSTANTS}\n\n'
                    + textwrap.dedent(body))
    return path


def _journal(study_dir: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(study_dir / layout.JOURNAL_FILE)))
    return optuna.load_study(study_name=name, storage=storage)


def _argv(storage: Path, data_root: Path, *extra: str) -> list[str]:
    return ["--storage", str(storage), "--data-root", str(data_root), "--cpus-per-trial", "1",
            "--gpus-per-trial", "0.5", "--no-asha", *extra]


def _assert_rounds_once(study_dir: Path) -> tuple[Any, Any]:
    """Every trial has exactly rounds 0..rounds/count once, in rounds and OOD tables."""
    trials = R.read_table(str(study_dir), "trials")
    rounds = R.read_table(str(study_dir), "rounds")
    ood = R.read_table(str(study_dir), "ood")
    assert not rounds.duplicated([R.TRIAL_ID, R.ROUND]).any()
    assert not ood.duplicated([R.TRIAL_ID, R.ROUND, R.OOD_SET, R.SPLIT, R.SCORE]).any()
    for _, trial in trials.iterrows():
        count = int(trial["rounds/count"])
        got = sorted(rounds.loc[rounds[R.TRIAL_ID] == trial[R.TRIAL_ID], R.ROUND])
        assert got == list(range(count + 1)), (trial[R.TRIAL_ID], got)
        assert trial["rounds_done"] == count
    return trials, rounds


# ----------------------------------------------------------------------------- no Ray needed


@pytest.mark.parametrize("extra, match", [
    (["--gpus-per-trial", "1.5"], r"--gpus-per-trial must lie in \(0, 1\].*got 1.5"),
    (["--objective", "ue:accuracy"], r"--objective must be score:metric.*got 'ue:accuracy'"),
    (["--objective", "entropy:auroc"], r"score in ue, ue_tiered, msp, p_garbage, energy"),
    (["--num-samples", "0"], r"--num-samples must be >= 1, got 0"),
    (["--cpus-per-trial", "64"], r"--cpus-per-trial must be <= this machine's"),
    (["--space", "nope"], r"unknown search space 'nope'; built-in spaces: default, paper"),
    (["--name", "../x"], r"--name must match"),
    (["--ood", "svhn,mnist"], r"`data/ood` must not contain the ID set"),
    (["--gpus-per-trial", "0.5", "--num-gpus", "0"], r"needs a GPU, this machine has 0"),
    (["--preset", "cifar"], r"--preset must be one of mnist, fashionmnist, got 'cifar'"),
])
def test_bad_options_fail_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     extra: list[str], match: str) -> None:
    import ray

    started = ray.is_initialized()
    argv = ["--storage", str(tmp_path), "--space", "quick", "--name", "bad", *extra]
    assert launch.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(match, err), err
    assert not (tmp_path / "bad").exists()  # nothing written, nothing started
    assert ray.is_initialized() == started


def test_space_clashing_with_a_fixed_option_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    path = _space_file(tmp_path, "clash", """
        def space(trial):
            trial.suggest_categorical("data/id", ["mnist", "fashionmnist"])
            return {"data/ood": ["cifar10"]}
    """)
    assert launch.main(["--storage", str(tmp_path), "--space", str(path), "--id", "mnist",
                        "--gpus-per-trial", "0"]) == 2
    assert "the space searches data/id, which the launcher fixes" in capsys.readouterr().err


def test_preset_is_the_base_under_suggestions_and_options(tmp_path: Path) -> None:
    """A trial's config: space constants < --preset < the space's suggestions < options."""
    opts = launch.parse_options(["--storage", str(tmp_path), "--space", "quick",
                                 "--preset", "fashionmnist", "--gpus-per-trial", "0",
                                 "--ood", "mnist,cifar10"])
    fn, fixed, samples = launch.check_space(opts)
    preset = launch.preset_settings(opts)
    for sample in samples:
        assert sample["data/id"] == "fashionmnist"  # preset over the space's constant
        assert sample["classifier/width"] == preset["classifier/width"]
        assert sample["data/ood"] == ["mnist", "cifar10"]  # the option over the preset
        assert 1 <= sample["rounds/count"] <= 2  # the suggestion over the preset
    searcher = launch.StudySearch(space=fn, metric="objective", mode="max",
                                  sampler=optuna.samplers.RandomSampler(seed=0),
                                  study_name="unit", fixed_keys=tuple(fixed),
                                  base_keys=tuple(preset))
    config = searcher.suggest("t0")
    assert "id" not in config["data"] and "width" not in config["classifier"]
    assert config["rounds"]["count"] in (1, 2)


def test_folder_datasets_are_made_absolute_for_every_trial(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials run in other working directories: a relative folder: path is resolved here."""
    monkeypatch.chdir(tmp_path)
    opts = launch.parse_options(["--storage", str(tmp_path), "--space", "quick",
                                 "--gpus-per-trial", "0", "--id", "folder:parts",
                                 "--ood", "folder:~/scratches,tinyimagenet"])
    fixed = launch.fixed_settings(opts)
    assert fixed["data/id"] == f"folder:{tmp_path / 'parts'}"
    assert fixed["data/ood"] == [f"folder:{Path.home() / 'scratches'}", "tinyimagenet"]


def test_searcher_fails_nan_and_keeps_asha_stopped_complete(tmp_path: Path) -> None:
    """Optuna: a NaN objective ends FAIL (not RUNNING); an ASHA-stopped trial is COMPLETE."""
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    searcher = launch.StudySearch(space=fn, metric="objective", mode="max",
                                  sampler=optuna.samplers.RandomSampler(seed=0),
                                  study_name="unit", fixed_keys=("data/id", "rounds/seed"))
    config = searcher.suggest("t-nan")
    assert "id" not in config["data"]  # the launcher's fixed settings win over the space
    assert config["study"]["optuna_number"] == 0
    assert json.loads(config["study"]["searched_params"])["rounds/count"] in (1, 2)
    searcher.on_trial_complete("t-nan", result={"objective": math.nan, "round": 1,
                                                "rounds_total": 2})
    searcher.suggest("t-stop")
    searcher.on_trial_complete("t-stop", result={"objective": 0.7, "round": 1,
                                                 "rounds_total": 3})
    searcher.suggest("t-err")
    searcher.on_trial_complete("t-err", error=True)
    states = {t.user_attrs["tune_trial_id"]: t for t in searcher._ot_study.trials}
    assert states["t-nan"].state == optuna.trial.TrialState.FAIL
    assert states["t-stop"].state == optuna.trial.TrialState.COMPLETE
    assert states["t-stop"].value == 0.7 and states["t-stop"].user_attrs["stopped_at_round"] == 1
    assert states["t-err"].state == optuna.trial.TrialState.FAIL


def test_callback_writes_stopped_and_completed(tmp_path: Path) -> None:
    study_dir = str(tmp_path / "s")
    callback = launch.StudyCallback(study_dir, "s")
    for trial_id, done in (("a", 1), ("b", 3)):
        R.write_trial(study_dir, {R.STUDY: "s", R.TRIAL_ID: trial_id, "status": R.RUNNING})
        trial = SimpleNamespace(trial_id=trial_id, config={},
                                last_result={"round": done, "rounds_total": 3})
        callback.on_trial_complete(0, [], trial)
    trials = R.read_table(study_dir, "trials").set_index(R.TRIAL_ID)["status"]
    assert trials.to_dict() == {"a": R.STOPPED, "b": R.COMPLETED}


# ----------------------------------------------------------------------------- real Ray


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # explicit: no token files in tests
    env = {"PYTHONPATH": str(REPO), "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}
    if os.environ.get("NETINV_CACHE"):
        env["NETINV_CACHE"] = os.environ["NETINV_CACHE"]
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, runtime_env={"env_vars": env},
             logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_study_end_to_end_and_warm_start(ray_cluster: Any, tmp_path: Path,
                                         data_root: Path) -> None:
    argv = _argv(tmp_path, data_root, "--space", "quick", "--name", "e2e", "--num-samples",
                 "3", "--max-concurrent", "2", "--seed", "1")
    assert launch.main(argv) == 0
    study_dir = tmp_path / "e2e"
    trials, rounds = _assert_rounds_once(study_dir)
    assert len(trials) == 3 and set(trials["status"]) == {R.COMPLETED}
    assert set(trials["gpus"]) == {0.5} and set(trials["cpus"]) == {1.0}
    assert set(trials["seed"]) == {1} and set(trials["rounds/seed"]) == {1}
    assert set(trials["data/root"]) == {str(data_root.resolve())}
    assert trials["searched_params"].nunique() == 3  # configs differ as Optuna proposed
    assert trials["inversion/alpha_kl"].nunique() == 3
    assert rounds[R.OBJECTIVE].notna().all() and (rounds[R.ATTEMPT] == 0).all()
    study = _journal(study_dir, "e2e")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    by_number = {t.number: t for t in study.trials}
    for _, row in trials.iterrows():  # Parquet row <-> Optuna trial, same params and value
        ot = by_number[int(row["optuna_number"])]
        assert ot.user_attrs["tune_trial_id"] == row[R.TRIAL_ID]
        assert ot.params == json.loads(row["searched_params"])
        assert ot.params["inversion/alpha_kl"] == row["inversion/alpha_kl"]
        own = rounds[rounds[R.TRIAL_ID] == row[R.TRIAL_ID]]
        # Optuna learns the trial's best round, as the trials row and the leaderboard rank it
        assert ot.value == pytest.approx(float(own[R.OBJECTIVE].max()))
        assert ot.value == pytest.approx(float(row[R.OBJECTIVE]))
        artifacts = study_dir / "artifacts" / row[R.TRIAL_ID]
        assert (artifacts / "state.pt").is_file() and (artifacts / "grid-round-1.png").is_file()
    saved = json.loads((study_dir / layout.STUDY_FILE).read_text())
    assert (saved["objective"], saved["mode"], saved["seed"]) == ("ue_tiered:auroc", "max", 1)
    assert saved["launches"][0]["versions"]["ray"] == ray_cluster.__version__

    # the same name again continues the same Optuna study (warm start)
    assert launch.main(_argv(tmp_path, data_root, "--space", "quick", "--name", "e2e",
                             "--num-samples", "1", "--seed", "1")) == 0
    study = _journal(study_dir, "e2e")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert len(R.read_table(str(study_dir), "trials")) == 4
    assert len(json.loads((study_dir / layout.STUDY_FILE).read_text())["launches"]) == 2


def test_nan_trial_is_failed_and_study_goes_on(ray_cluster: Any, tmp_path: Path,
                                               data_root: Path) -> None:
    # Optuna trial 0 gets a weight decay of 1e30: AdamW's decoupled decay multiplies every
    # weight by (1 - lr * 1e30) per step, the weights overflow and the loss is NaN in round 0
    path = _space_file(tmp_path, "nan_space", """
        def space(trial):
            trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)
            decay = 1e30 if trial.number == 0 else 0.0
            return {**QUICK, "classifier/weight_decay": decay, "rounds/count": 1}
    """)
    argv = _argv(tmp_path, data_root, "--space", str(path), "--name", "nan", "--num-samples",
                 "2", "--max-concurrent", "1")
    assert launch.main(argv) == 0
    study_dir = tmp_path / "nan"
    trials = R.read_table(str(study_dir), "trials").set_index("optuna_number")
    assert trials.loc[0, "status"] == R.FAILED
    assert "NonFiniteLossError" in trials.loc[0, "failure_reason"]
    assert trials.loc[0, "attempts"] == 1  # the retries re-raised from failure.json at once
    assert trials.loc[1, "status"] == R.COMPLETED
    study = _journal(study_dir, "nan")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL,
                                               optuna.trial.TrialState.COMPLETE]
    marker = study_dir / "artifacts" / trials.loc[0, R.TRIAL_ID] / "failure.json"
    assert "NonFiniteLossError" in json.loads(marker.read_text())["reason"]


def _slow_space(tmp_path: Path, name: str, rounds: int) -> Path:
    return _space_file(tmp_path, name, f"""
        def space(trial):
            trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)
            return {{**QUICK, "inversion/steps": 150, "rounds/count": {rounds}}}
    """)


def _wait_for(predicate: Any, what: str, timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _first_round_file(study_dir: Path, round_index: int) -> Path | None:
    folder = study_dir / "results" / "rounds"
    hits = sorted(folder.glob(f"*/round-{round_index}.parquet")) if folder.is_dir() else []
    return hits[0] if hits else None


def test_killed_worker_resumes_from_checkpoint(ray_cluster: Any, tmp_path: Path,
                                               data_root: Path) -> None:
    path = _slow_space(tmp_path, "slow_space", rounds=3)
    study_dir = tmp_path / "kill"
    killed: dict[str, Any] = {}

    def kill_after_round_1() -> None:
        hit = _wait_for(lambda: _first_round_file(study_dir, 1), "round 1")
        trial_id = hit.parent.name
        worker = json.loads((study_dir / "artifacts" / trial_id / "worker.json").read_text())
        killed.update(trial_id=trial_id, pid=worker["pid"])
        os.kill(worker["pid"], signal.SIGKILL)  # the trial's actor process, mid-round 2

    killer = threading.Thread(target=kill_after_round_1, daemon=True)
    killer.start()
    argv = _argv(tmp_path, data_root, "--space", str(path), "--name", "kill", "--num-samples",
                 "1")
    assert launch.main(argv) == 0
    killer.join(timeout=5)
    assert killed, "the worker was never killed"
    trials, rounds = _assert_rounds_once(study_dir)
    row = trials.set_index(R.TRIAL_ID).loc[killed["trial_id"]]
    assert row["status"] == R.COMPLETED and row["attempts"] == 2
    worker = json.loads((study_dir / "artifacts" / killed["trial_id"] / "worker.json")
                        .read_text())
    assert worker["pid"] != killed["pid"] and worker["attempt"] == 1
    resumed = worker["resumed_from_round"]
    assert resumed is not None and 0 <= resumed <= 2  # continued from a checkpoint
    mine = rounds[rounds[R.TRIAL_ID] == killed["trial_id"]].set_index(R.ROUND)
    for r in range(4):  # rounds up to the checkpoint written once, by the first attempt
        expected_attempt = 0 if r <= resumed else 1
        assert mine.loc[r, R.ATTEMPT] == expected_attempt, (r, resumed)
    assert (mine.loc[resumed + 1:, R.RESUMED_FROM_ROUND] == resumed).all()
    study = _journal(study_dir, "kill")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_interrupted_driver_resumes_without_duplicates(ray_cluster: Any, tmp_path: Path,
                                                       data_root: Path) -> None:
    path = _slow_space(tmp_path, "resume_space", rounds=2)
    study_dir = tmp_path / "res"
    address = ray_cluster.get_runtime_context().gcs_address
    argv = _argv(tmp_path, data_root, "--space", str(path), "--name", "res", "--num-samples",
                 "3", "--max-concurrent", "1", "--address", address)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}
    proc = subprocess.Popen([sys.executable, "-m", "study.launch", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: _first_round_file(study_dir, 1) or proc.poll() is not None,
                  "the first trial's round 1")
        assert proc.poll() is None, "the study ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = R.read_table(str(study_dir), "trials")
    assert len(before) < 3 or (before["status"] != R.COMPLETED).any(), out[-3000:]
    interrupted = set(before.loc[before["status"] == R.RUNNING, R.TRIAL_ID])

    assert launch.main(["--storage", str(tmp_path), "--name", "res", "--resume"]) == 0
    trials, rounds = _assert_rounds_once(study_dir)
    assert len(trials) == 3 and set(trials["status"]) == {R.COMPLETED}
    assert sorted(trials["optuna_number"]) == [0, 1, 2]
    study = _journal(study_dir, "res")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert Config.from_json(trials["config_json"].iloc[0]).rounds.count == 2
    for trial_id in interrupted:  # continued from its checkpoint, not rerun from round 0
        mine = rounds[rounds[R.TRIAL_ID] == trial_id].set_index(R.ROUND)
        assert mine.loc[0, R.ATTEMPT] == 0
        again = mine[mine[R.ATTEMPT] == 1]
        assert again[R.RESUMED_FROM_ROUND].notna().all()
        assert (again.index > again[R.RESUMED_FROM_ROUND]).all()
