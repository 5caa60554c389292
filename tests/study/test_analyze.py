"""study.analyze on a real small study folder: real pipelines, Parquet, Optuna journal; no Ray.

Two tiny real runs are written with study.results' writers as completed trials, plus a trial
stopped early (after round 0), a failed one and a running one. The objective score's AUROC rows
are set by hand so that the val-best trial (A, best at round 0) differs from the test-best trial
(B): the report must pick A.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from PIL import Image

from netinv.config import Config
from netinv.detector import Detector
from netinv.pipeline import RunResult, run_rounds
from netinv.records import mean_metric
from netinv.state import RoundState
from netinv.plots import save_grid
from study import analyze
from study import layout
from study import results as R

TINY = {"data/train_limit": 2000, "data/test_limit": 500, "data/id_val_size": 500,
        "inversion/steps": 20, "rounds/count": 1, "classifier/width": 8,
        "inversion/samples_per_round": 200, "garbage/noise_count": 200}
STUDY = "tiny-study"
SCORE = "ue_tiered"
# trial -> searched params, and the (val, test) AUROC of SCORE per round, set by hand
TRIALS: dict[str, dict[str, Any]] = {
    "A": {"params": {"inversion/alpha_kl": 0.5, "inversion/gamma_cosine": 0.05},
          "auroc": [(0.99, 0.30), (0.50, 0.95)]},  # val-best, at round 0
    "B": {"params": {"inversion/alpha_kl": 2.0, "inversion/gamma_cosine": 0.2},
          "auroc": [(0.60, 0.40), (0.90, 0.999)]},  # test-best
}
EXPECTED_FILES = ("report.md", "leaderboard.csv", "summary.csv", "best_config.json",
                  "best_detector.pt", "importance.csv", "history.png", "importance.png",
                  "rounds.png", "grids.png", "roc.png", "histograms.png")


def _set_auroc(record: dict[str, Any], val: float, test: float) -> dict[str, Any]:
    record = copy.deepcopy(record)
    for row in record["ood"]:
        if row["score"] == SCORE:
            row["auroc"] = val if row["split"] == "val" else test
    return record


def _write_trial(study_dir: str, study: optuna.Study, trial_id: str, params: dict[str, Any],
                 result: RunResult | None, records: list[dict[str, Any]], status: str,
                 **row: Any) -> None:
    """One trial as the trainable writes it: round rows, artifacts, trial row, Optuna trial."""
    config = Config.from_flat({**TINY, **params, **(result.state.config if result else {})})
    objectives = [mean_metric(rec, score=SCORE, metric="auroc", split="val") for rec in records]
    for record, objective in zip(records, objectives):
        R.write_round(study_dir, study=STUDY, trial_id=trial_id, record=record,
                      objective=objective)
    if result is not None:
        artifacts = Path(layout.artifact_uri(study_dir, trial_id, ""))
        artifacts.mkdir(parents=True, exist_ok=True)
        result.state.save(artifacts / "state.pt")
        save_grid(result.state.grid, result.data.classes, artifacts / "grid-round-1.png")
    study.enqueue_trial(params)
    trial = study.ask()
    for name in params:
        trial.suggest_float(name, 0.0, 10.0)
    best = max(objectives) if objectives else None
    if status in (R.COMPLETED, R.STOPPED):  # a trial stopped by ASHA is COMPLETE in Optuna
        study.tell(trial, best)
    elif status == R.FAILED:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    R.write_trial(study_dir, {
        R.STUDY: STUDY, R.TRIAL_ID: trial_id, "optuna_number": trial.number, "status": status,
        "seed": 0, "rounds_done": len(records) - 1 if records else None, "attempts": 1,
        "objective_name": f"{SCORE}:auroc", R.OBJECTIVE: best,
        "best_round": objectives.index(best) if objectives else None,
        "searched_params": json.dumps(params), **R.config_row(config), **row})


@dataclass
class Built:
    """The study folder and, per real trial, its run and every round's state."""

    folder: str
    runs: dict[str, RunResult]
    states: dict[str, list[RoundState]]


@pytest.fixture(scope="module")
def study_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    folder = tmp_path_factory.mktemp("storage") / STUDY
    folder.mkdir()
    storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    (folder / "study.json").write_text(json.dumps(
        {"name": STUDY, "objective": f"{SCORE}:auroc", "mode": "max"}))
    base = {**TINY, "data/root": str(data_root), "data/download": False}
    data, results, round_states = None, {}, {}
    for trial_id, spec in TRIALS.items():
        config = Config.from_flat({**base, **spec["params"]})
        states: list[RoundState] = []
        result = run_rounds(config, data=data, on_round=lambda record, st: states.append(st))
        round_states[trial_id] = states
        data = result.data
        records = [_set_auroc(rec, *auroc) for rec, auroc in zip(result.records, spec["auroc"])]
        _write_trial(str(folder), study, trial_id, spec["params"], result, records,
                     R.COMPLETED, wall_s=10.0)
        results[trial_id] = result
    stopped = [_set_auroc(results["B"].records[0], 0.80, 0.80)]
    _write_trial(str(folder), study, "C", {"inversion/alpha_kl": 1.0,
                                           "inversion/gamma_cosine": 0.0}, None, stopped,
                 R.STOPPED, wall_s=3.0)
    _write_trial(str(folder), study, "D-failed", {"inversion/alpha_kl": 9.0}, None, [],
                 R.FAILED, failure_reason="NonFiniteLossError: classifier loss became nan")
    running = [_set_auroc(results["A"].records[0], 0.85, 0.85)]
    _write_trial(str(folder), study, "E-running", {"inversion/alpha_kl": 3.0}, None, running,
                 R.RUNNING)
    return Built(str(folder), results, round_states)


@pytest.fixture(scope="module")
def report(study_dir: Built) -> analyze.Report:
    return analyze.analyze(study_dir.folder)  # into <study>/report


def test_every_file_is_written_and_every_png_is_an_image(report: analyze.Report) -> None:
    for name in EXPECTED_FILES:
        path = report.out / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            with Image.open(path) as image:
                image.verify()
                assert image.format == "PNG" and image.size[0] > 50
    text = (report.out / "report.md").read_text()
    for name in EXPECTED_FILES:
        if name.endswith(".png"):
            assert f"]({name})" in text, name
    assert (report.out / "grids" / "A-round-1.png").is_file()


def test_leaderboard_chooses_by_val_not_test(report: analyze.Report) -> None:
    board = pd.read_csv(report.out / "leaderboard.csv")
    assert board["trial_id"].tolist() == ["A", "B", "E-running", "C"]
    assert report.best_trial == "A"
    a = board.iloc[0]
    assert a["best_round"] == 0 and a["val_objective"] == pytest.approx(0.99)
    assert a["test_auroc_mean"] == pytest.approx(0.30)  # the chosen round's test, not the best
    assert board.loc[board["trial_id"] == "B", "test_auroc_mean"].item() == pytest.approx(0.999)
    assert {"test_auroc/fashionmnist", "test_fpr95/cifar10", "id_test_accuracy",
            "inversion/alpha_kl"} <= set(board.columns)
    assert board.loc[0, "inversion/alpha_kl"] == 0.5


def test_summary_lists_failed_and_running_trials(report: analyze.Report) -> None:
    summary = pd.read_csv(report.out / "summary.csv").set_index("trial_id")
    assert summary.loc["D-failed", "status"] == "failed"
    assert "NonFiniteLossError" in summary.loc["D-failed", "failure_reason"]
    assert summary.loc["E-running", "status"] == "running"
    assert summary.loc["C", "status"] == "stopped" and summary.loc["C", "best_round"] == 0
    text = (report.out / "report.md").read_text()
    assert "## Failed trials" in text and "classifier loss became nan" in text
    assert "## Running trials" in text and "E-running" in text


def test_best_config_round_trips_and_is_trial_a(report: analyze.Report,
                                                study_dir: Built) -> None:
    flat = json.loads((report.out / "best_config.json").read_text())
    config = Config.from_flat(flat)
    assert config.to_flat() == flat
    assert config.inversion.alpha_kl == 0.5 and config.inversion.gamma_cosine == 0.05
    assert config.data.root is None and config.rounds.device == "auto"
    expected = Config.from_flat({**study_dir.runs["A"].state.config,
                                 **analyze.MACHINE_KEYS}).to_flat()
    assert flat == expected


def test_best_detector_loads_and_reproduces_trial_a(report: analyze.Report,
                                                    study_dir: Built) -> None:
    detector = Detector.load(report.out / "best_detector.pt")
    assert detector.score_name == SCORE
    result = study_dir.runs["A"]
    scores = detector.score(result.data.id_test.images)
    assert torch.equal(scores, result.state.test_scores["id"][SCORE])
    rgb = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    assert detector.score(rgb.numpy()).shape == (4,)
    assert any("only round 1's state is kept" in note for note in report.notes)


def test_importances_from_the_journal(report: analyze.Report) -> None:
    importance = pd.read_csv(report.out / "importance.csv")
    assert set(importance["parameter"]) == {"inversion/alpha_kl", "inversion/gamma_cosine"}
    assert importance["importance"].sum() == pytest.approx(1.0)


def test_importance_needs_two_completed_trials(tmp_path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="one", storage=storage)
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 2.0)
    study.tell(trial, 0.5)
    values, note = analyze.param_importances(str(tmp_path), {"name": "one"})
    assert values is None and "at least 2 completed" in note and "has 1" in note
    values, note = analyze.param_importances(str(tmp_path / "none"), {})
    assert values is None and "no Optuna journal" in note


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_importance_of_a_multi_objective_study(tmp_path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="nsga", storage=storage,
                                directions=["maximize", "maximize"])
    study.set_metric_names(["id_val_accuracy", "objective"])
    for x, y in ((0.1, 1.0), (0.5, 2.0), (0.9, 0.5), (0.3, 1.5)):
        study.enqueue_trial({"x": x, "y": y})
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, [0.9, trial.suggest_float("y", 0.0, 2.0)])
    values, note = analyze.param_importances(str(tmp_path), {"name": "nsga"})
    assert values is not None and set(values) == {"x", "y"} and "multi-objective" in note
    assert values["y"] > values["x"]  # the objective is y alone


def test_other_objective_and_bad_arguments(study_dir: Built, tmp_path: Path) -> None:
    folder = study_dir.folder
    report = analyze.analyze(folder, out=tmp_path / "fpr", objective="energy:fpr95", top=2)
    board = pd.read_csv(report.out / "leaderboard.csv")
    values = board["val_objective"].tolist()
    assert values == sorted(values)  # fpr95 is minimised
    with pytest.raises(ValueError, match="score in ue, ue_tiered"):
        analyze.analyze(folder, out=tmp_path / "bad", objective="ue:accuracy")
    assert analyze.main([folder, "--out", str(tmp_path / "cli"), "--top", "1"]) == 0
    assert (tmp_path / "cli" / "report.md").is_file()
    assert analyze.main([str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert analyze.main([str(empty)]) == 2


def test_best_state_file_is_preferred(study_dir: Built, tmp_path: Path) -> None:
    folder, results = study_dir.folder, study_dir.runs
    copy_dir = tmp_path / STUDY
    shutil.copytree(folder, copy_dir, ignore=shutil.ignore_patterns("report"))
    round0 = study_dir.states["A"][0]  # A's best val round
    round0.save(copy_dir / "artifacts" / "A" / "best-state.pt")
    report = analyze.analyze(copy_dir)
    detector = Detector.load(report.out / "best_detector.pt")
    scores = detector.score(results["A"].data.id_test.images)
    assert torch.equal(scores, round0.test_scores["id"][SCORE])
    assert not any("state is kept" in note for note in report.notes)
