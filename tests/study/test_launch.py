"""study.launch end to end on a real local Ray instance, real Optuna journal, real Parquet.

One Ray instance serves the whole module (2 CPUs, 1 logical GPU so that fractional-GPU
scheduling is exercised on a CPU machine). Trials use the ``quick`` space or small user spaces
written to tmp_path, on the real data under ``data_root``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from netinv.config import Config
from netinv.detector import Detector
from study import launch, ray_compat
from study import layout
from study import results as R

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 900  # a hang guard, not a speed check: quiet, a study here takes well under a minute

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
    (["--space", "nope"], r"unknown search space 'nope'; built-in spaces: default, inversion, paper"),
    (["--name", "../x"], r"--name must match"),
    (["--ood", "svhn,mnist"], r"`data/ood` must not contain the ID set"),
    (["--gpus-per-trial", "0.5", "--num-gpus", "0"], r"needs a GPU, this machine has 0"),
    (["--preset", "cifar"], r"--preset must be one of mnist, fashionmnist, cifar10, got 'cifar'"),
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


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: what a refused launch must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _study_json(text: str) -> Any:
    """Setup: a study folder ``bad`` whose study.json holds ``text``."""
    def setup(tmp_path: Path) -> list[str]:
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / layout.STUDY_FILE).write_text(text)
        return []
    return setup


def _file_storage(tmp_path: Path) -> list[str]:
    (tmp_path / "plain-file").write_text("not a folder")
    return ["--storage", str(tmp_path / "plain-file")]


SAVED = '{"name": "bad", "launches": [{"at": "2025-01-01"}]}'
BAD_INPUT = [  # (what, setup -> extra argv, options, error pattern naming the input)
    ("storage is a file", _file_storage, [], r"--storage must be a folder .*plain-file"),
    # sysfs refuses new files even to root (a chmod-ed folder would not stop root)
    ("storage read-only", lambda _: ["--storage", "/sys/netinv-studies"], [],
     r"--storage must be a folder this process can write.*storage='/sys/netinv-studies'"),
    ("storage under a file", lambda t: _file_storage(t)[:1] + [str(t / "plain-file" / "x")], [],
     r"--storage must be a folder .*plain-file is a file"),
    ("negative seed", None, ["--seed", "-5"],
     r"--seed must lie in \[0, 4294967295\], got seed=-5"),
    ("seed too large", None, ["--seed", str(2**32)], r"--seed must lie in .*got seed=4294967296"),
    ("NaN GPUs", None, ["--num-gpus", "nan"], r"--num-gpus must be a finite number >= 0, got nan"),
    ("infinite CPUs", None, ["--cpus-per-trial", "inf"],
     r"--cpus-per-trial must be a finite number > 0, got inf"),
    ("unknown ID set", None, ["--id", "foo"], r"--id \(data/id\) must be one of mnist, .*'foo'"),
    ("unknown OOD set", None, ["--ood", "mnist,foo"], r"--ood \(data/ood\) must be .*'mnist,foo'"),
    ("truncated study.json", _study_json(SAVED[:25]), [],
     r"bad/study.json must be a JSON object written by study.launch, but it does not parse"),
    ("extended study.json", _study_json(SAVED + "garbage"), [],
     r"bad/study.json must be a JSON object .*does not parse: Extra data"),
    ("study.json not an object", _study_json("[1, 2]"), [], r"bad/study.json .*got a list"),
    ("study.json launches not a list", _study_json('{"name": "bad", "launches": 5}'), [],
     r"bad/study.json must hold a list 'launches', got int"),
    ("resume, truncated study.json", _study_json(SAVED[:25]), ["--resume"],
     r"bad/study.json must be a JSON object .*does not parse"),
    ("resume, no study", None, ["--resume"], r"--resume needs an earlier launch of --name bad"),
]


@pytest.mark.parametrize("what, setup, extra, match", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_naming_it_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        what: str, setup: Any, extra: list[str], match: str) -> None:
    """Each bad input: exit 2, one ``error:`` line naming it, before the data checks, and no
    study.json, journal or any other file written or changed."""
    import ray

    def data_checked(sample: dict[str, Any]) -> None:
        raise AssertionError(f"{what}: the data was checked before the bad input was refused")

    monkeypatch.setattr(launch, "check_data", data_checked)
    started = ray.is_initialized()
    argv = ["--storage", str(tmp_path), "--space", "quick", "--name", "bad",
            "--gpus-per-trial", "0", *(setup(tmp_path) if setup else []), *extra]
    before = _tree(tmp_path)
    assert launch.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    assert _tree(tmp_path) == before  # no study.json, no journal, nothing changed
    assert not Path("/sys/netinv-studies").exists()
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
    assert set(trials["bf16"]) == {False}  # the quick space asks for fp32, on any hardware
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
    trials = R.read_table(str(study_dir), "trials")
    assert len(trials) == 4
    launches = json.loads((study_dir / layout.STUDY_FILE).read_text())["launches"]
    assert len(launches) == 2
    # the relaunch (same --seed) proposed a new configuration, not a replay of trial 0's,
    # while every trial kept the user's seed; study.json says which sampler seed each used
    assert trials["searched_params"].nunique() == 4, trials["searched_params"].tolist()
    assert set(trials["rounds/seed"]) == {1} and set(trials["seed"]) == {1}
    assert launches[0]["sampler_seed"] != launches[1]["sampler_seed"]


def _mlflow_runs(study_dir: Path, experiment: str) -> Any:
    """MLflow's own reader on the study's default store (``<study>/mlflow.db``)."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{study_dir / 'mlflow.db'}")
    try:
        return mlflow.search_runs(experiment_names=[experiment])
    finally:
        mlflow.set_tracking_uri(before)


def test_mlflow_gets_every_ood_metric_and_the_display_is_compact(
        ray_cluster: Any, tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture
        ) -> None:
    argv = _argv(tmp_path, data_root, "--space", "quick", "--name", "tracked", "--num-samples",
                 "2", "--max-concurrent", "2", "--mlflow")
    assert launch.main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out
    study_dir = tmp_path / "tracked"
    assert "Checkpoint successfully created" not in captured.err  # the trials' log lines

    # the live display: header, study best, one line per trial; no per-checkpoint lines
    assert "study tracked: 2/2 trials (2 done)" in out
    assert re.search(r"best val ue_tiered:auroc \(max\): 0\.\d{4} \(trial \w+\)", out)
    assert "saved a checkpoint" not in out and "Checkpoint" not in out
    assert "Current time:" not in out  # Ray's own table is behind --ray-table

    # MLflow's own reader on the default local store: one run per trial, per-OOD metrics
    runs = _mlflow_runs(study_dir, "tracked")
    assert len(runs) == 2
    ood = R.read_table(str(study_dir), "ood")
    trials = R.read_table(str(study_dir), "trials")
    for _, row in trials.iterrows():  # each trial's last round reached MLflow, OOD set by set
        run = runs[runs["tags.trial_name"].str.endswith(row[R.TRIAL_ID])]
        assert len(run) == 1, runs["tags.trial_name"].tolist()
        run = run.iloc[0]
        last = int(run["metrics.round"])
        assert last == row["rounds_done"] and run["metrics.objective"] == pytest.approx(
            float(row[R.OBJECTIVE]) if last == row["best_round"] else run["metrics.objective"])
        mine = ood[(ood[R.TRIAL_ID] == row[R.TRIAL_ID]) & (ood[R.ROUND] == last)]
        assert len(mine) > 0
        for _, m in mine.iterrows():
            for metric in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_ood_positive"):
                name = f"metrics.ood/{m[R.SPLIT]}/{m[R.SCORE]}/{m[R.OOD_SET]}/{metric}"
                assert run[name] == pytest.approx(m[metric]), name
    assert (study_dir / "mlflow.db").is_file()


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


def test_a_fitted_score_is_searched_on(ray_cluster: Any, tmp_path: Path,
                                       data_root: Path) -> None:
    path = _space_file(tmp_path, "fitted_space", """
        def space(trial):
            trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)
            return {**QUICK, "rounds/fitted_scores": True, "rounds/count": 1}
    """)
    argv = _argv(tmp_path, data_root, "--space", str(path), "--name", "fitted",
                 "--num-samples", "2", "--max-concurrent", "2", "--objective", "fused:auroc")
    assert launch.main(argv) == 0
    study_dir = tmp_path / "fitted"
    trials, _ = _assert_rounds_once(study_dir)
    assert (trials["status"] == R.COMPLETED).all()
    ood = R.read_table(str(study_dir), "ood")
    for trial_id, trial in trials.set_index(R.TRIAL_ID).iterrows():
        rows = ood[(ood[R.TRIAL_ID] == trial_id) & (ood[R.SCORE] == "fused")
                   & (ood[R.SPLIT] == "val")]
        assert set(rows[R.OOD_SET]) == {"fashionmnist", "cifar10"}
        best = rows[rows[R.ROUND] == trial["best_round"]]["auroc"].mean()
        assert trial["objective_name"] == "fused:auroc"
        assert trial[R.OBJECTIVE] == pytest.approx(best)  # the objective is fused's
    # the report exports the best trial's detector with fused fitted as its trial fitted it
    from study.analyze import analyze

    report = analyze(study_dir, out=tmp_path / "report")
    detector = Detector.load(report.files["best_detector"])
    assert detector.score_name == "fused" and detector.fusion.scores[0] == "energy"


def test_trials_share_round0_and_equal_a_study_without_the_cache(
        ray_cluster: Any, tmp_path: Path, data_root: Path) -> None:
    # three fixed configs that differ only after round 0; --seed 7 is no other test's, so at
    # most the first trial finds no entry (one may be left by an earlier run of this test)
    path = _space_file(tmp_path, "shared_space", """
        CONFIGS = [{"inversion/alpha_kl": 0.5}, {"inversion/alpha_kl": 2.0},
                   {"inversion/alpha_kl": 1.0, "garbage/policy": "uncertain"}]

        def space(trial):  # nothing suggested: trial n runs CONFIGS[n] in both studies
            return {**QUICK, **CONFIGS[trial.number % 3], "rounds/count": 1}
    """)
    tables = {}
    for name, extra in (("r0on", ()), ("r0off", ("--no-round0-cache",))):
        argv = _argv(tmp_path, data_root, "--space", str(path), "--name", name,
                     "--num-samples", "3", "--max-concurrent", "1", "--seed", "7", *extra)
        assert launch.main(argv) == 0
        trials, rounds = _assert_rounds_once(tmp_path / name)  # complete rows either way
        assert len(trials) == 3 and set(trials["status"]) == {R.COMPLETED}
        tables[name] = (trials.set_index("optuna_number"),
                        rounds.merge(trials[[R.TRIAL_ID, "optuna_number"]], on=R.TRIAL_ID)
                        .set_index(["optuna_number", R.ROUND]).sort_index())
    (trials_on, rounds_on), (trials_off, rounds_off) = tables["r0on"], tables["r0off"]
    cached = rounds_on.xs(0, level=R.ROUND)["round0_cached"]
    assert cached.sum() >= 2 and cached.loc[[1, 2]].all()  # later trials loaded round 0
    assert not rounds_off.xs(0, level=R.ROUND)["round0_cached"].any()
    assert rounds_on.xs(1, level=R.ROUND)["round0_cached"].isna().all()
    # every metric of every round equals the study without the cache, bit for bit
    same = [c for c in R.RECORD_FIELDS if not c.startswith("time_") and c != "round0_cached"]
    assert rounds_on[[R.OBJECTIVE, *same]].equals(rounds_off[[R.OBJECTIVE, *same]])
    for table in (trials_on, trials_off):  # the best trial: same config, same value
        assert table[R.OBJECTIVE].notna().all()
    best_on, best_off = trials_on[R.OBJECTIVE].idxmax(), trials_off[R.OBJECTIVE].idxmax()
    assert best_on == best_off
    assert trials_on.loc[best_on, R.OBJECTIVE] == trials_off.loc[best_off, R.OBJECTIVE]
    assert trials_on.loc[best_on, "config_json"] == trials_off.loc[best_off, "config_json"]


def _driver(tmp_path: Path, data_root: Path, address: str, *extra: str) -> subprocess.Popen:
    """``python -m study.launch`` as its own driver process, joining the test's Ray."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}
    return subprocess.Popen([sys.executable, "-m", "study.launch",
                             *_argv(tmp_path, data_root, "--address", address, *extra)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_short_trials_do_not_flood_the_display_with_tunes_snapshot_warning(
        ray_cluster: Any, tmp_path: Path, data_root: Path) -> None:
    # Tune warns (5 lines each) whenever it saves its experiment state twice within 5 s, as it
    # does for trials of a few seconds; the driver's own process prints it, so run one
    address = ray_cluster.get_runtime_context().gcs_address
    proc = _driver(tmp_path, data_root, address, "--space", "quick", "--name", "quiet",
                   "--num-samples", "4", "--max-concurrent", "2", "--no-asha")
    out, _ = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, out[-3000:]
    assert "study quiet: 4/4 trials (4 done)" in out
    assert "Experiment state snapshotting" not in out


def test_concurrent_launches_of_one_study_propose_no_duplicates(
        ray_cluster: Any, tmp_path: Path, data_root: Path) -> None:
    """Two drivers launch one study name at once with the same --seed: both record their
    launch, share one Optuna study and one dataset, and no configuration is proposed twice."""
    path = _space_file(tmp_path, "tiny_space", """
        def space(trial):
            trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)
            trial.suggest_float("inversion/gamma_cosine", 1e-3, 1.0, log=True)
            return {**QUICK, "inversion/steps": 10, "rounds/count": 1}
    """)
    address = ray_cluster.get_runtime_context().gcs_address
    procs = [_driver(tmp_path, data_root, address, "--space", str(path), "--name", "twice",
                     "--num-samples", "2", "--max-concurrent", "1", "--seed", "5")
             for _ in range(2)]
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    study_dir = tmp_path / "twice"
    trials, _ = _assert_rounds_once(study_dir)
    assert len(trials) == 4 and set(trials["status"]) == {R.COMPLETED}
    assert trials["searched_params"].nunique() == 4, trials["searched_params"].tolist()
    assert set(trials["rounds/seed"]) == {5}
    study = _journal(study_dir, "twice")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 4
    launches = json.loads((study_dir / layout.STUDY_FILE).read_text())["launches"]
    assert len(launches) == 2  # neither driver's record was lost to the other's write
    assert len(list((study_dir / layout.TUNE_DIR).iterdir())) == 2  # one Tune run each


def test_resume_with_mlflow_logs_the_resumed_trials(ray_cluster: Any, tmp_path: Path,
                                                    data_root: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """A study launched without --mlflow, interrupted, then resumed with it: the trials that
    ran after the resume reach MLflow, each up to its last round."""
    study_dir = tmp_path / "mlres"
    out = _launch_and_interrupt(ray_cluster, tmp_path, data_root, "mlres", trials=2)
    before = R.read_table(str(study_dir), "trials")
    finished_before = set(before.loc[before["status"] == R.COMPLETED, R.TRIAL_ID])
    assert not (study_dir / "mlflow.db").exists(), out[-2000:]

    capsys.readouterr()
    assert launch.main(["--storage", str(tmp_path), "--name", "mlres", "--resume",
                        "--mlflow"]) == 0
    assert "the resumed trials also log to MLflow" in capsys.readouterr().out
    trials = R.read_table(str(study_dir), "trials")
    assert len(trials) == 2 and set(trials["status"]) == {R.COMPLETED}

    runs = _mlflow_runs(study_dir, "mlres")
    resumed = trials[~trials[R.TRIAL_ID].isin(finished_before)]
    assert len(resumed) >= 1 and len(runs) == len(resumed)  # none for the finished ones
    for _, row in resumed.iterrows():
        run = runs[runs["tags.trial_name"].str.endswith(row[R.TRIAL_ID])]
        assert len(run) == 1, runs["tags.trial_name"].tolist()
        assert int(run.iloc[0]["metrics.round"]) == row["rounds_done"] == 2


def _trainable(config: dict) -> None:
    pass


def test_resume_with_mlflow_keeps_a_launched_runs_own_callback(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A run launched with --mlflow already logs on resume: no second callback (each trial
    would get two MLflow runs)."""
    from ray import tune

    from study.options import parse_options
    from study.watch import mlflow_callback

    study_dir = tmp_path / "logged"
    tune.Tuner(_trainable, tune_config=tune.TuneConfig(num_samples=1),
               run_config=tune.RunConfig(name="exp", storage_path=str(study_dir / "ray"),
                                         callbacks=[mlflow_callback(str(study_dir), "logged",
                                                                    None)]))
    restored = tune.Tuner.restore(str(study_dir / "ray" / "exp"), trainable=_trainable)
    opts = parse_options(["--storage", str(tmp_path), "--name", "logged"])
    launch.add_mlflow_on_resume(restored, opts, None)
    assert "launched with --mlflow; its MLflow logging continues" in capsys.readouterr().out
    assert len(ray_compat.restored_parts(restored)[1]) == 1


def _launch_and_interrupt(ray_cluster: Any, tmp_path: Path, data_root: Path, name: str,
                          *extra: str, trials: int) -> str:
    """Launch study ``name`` (``trials`` slow 2-round trials, one at a time; ``extra``
    options) in its own driver, Ctrl+C it once the first trial's round 1 is written; returns
    the driver's output."""
    path = _slow_space(tmp_path, f"{name}_space", rounds=2)
    address = ray_cluster.get_runtime_context().gcs_address
    proc = _driver(tmp_path, data_root, address, "--space", str(path), "--name", name,
                   "--num-samples", str(trials), "--max-concurrent", "1", *extra)
    try:
        _wait_for(lambda: _first_round_file(tmp_path / name, 1) or proc.poll() is not None,
                  "the first trial's round 1")
        assert proc.poll() is None, "the study ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


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
    """Ctrl+C a driver mid-study; a copy of the folder resumes into itself (the original
    untouched, its MLflow store included), then the original resumes: every trial x round
    once, none rerun from 0."""
    study_dir = tmp_path / "res"
    out = _launch_and_interrupt(ray_cluster, tmp_path, data_root, "res", "--mlflow", trials=3)
    before = R.read_table(str(study_dir), "trials")
    assert len(before) < 3 or (before["status"] != R.COMPLETED).any(), out[-3000:]
    interrupted = set(before.loc[before["status"] == R.RUNNING, R.TRIAL_ID])

    # a copy of the interrupted study resumes into itself: --storage/--name name the study,
    # not the name its study.json was written under; the original is left exactly as it was
    shutil.copytree(study_dir, tmp_path / "res-copy", symlinks=True)
    original = _tree(study_dir)
    assert launch.main(["--storage", str(tmp_path), "--name", "res-copy", "--resume"]) == 0
    after = _tree(study_dir)
    changed = sorted(k for k in {*original, *after} if original.get(k) != after.get(k))
    assert not changed, changed
    copied, _ = _assert_rounds_once(tmp_path / "res-copy")
    assert len(copied) == 3 and set(copied["status"]) == {R.COMPLETED}
    # the copy logged its resumed trials to its own copy of the MLflow store
    assert len(_mlflow_runs(tmp_path / "res-copy", "res")) > len(_mlflow_runs(study_dir, "res"))
    copied_study = _journal(tmp_path / "res-copy", "res")  # the Optuna study keeps its name
    assert len(copied_study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in copied_study.trials)

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
