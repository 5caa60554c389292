"""study.analyze on a real small study folder (``tests.helpers.study_folder``): real
pipelines, Parquet, Optuna journal; no Ray. The val-best trial (A, best at round 0) differs from
the test-best trial (B): the report must pick A.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from netinv.config import Config
from netinv.detector import Detector
from study import analyze, tables
from tests.helpers.study_folder import SCORE, Built, copy_study

EXPECTED_FILES = ("report.md", "leaderboard.csv", "summary.csv", "best_config.json",
                  "best_detector.pt", "importance.csv", "history.png", "importance.png",
                  "rounds.png", "grids.png", "roc.png", "histograms.png")


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
                                 **tables.MACHINE_KEYS}).to_flat()
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
    results = study_dir.runs
    copy_dir = copy_study(study_dir, tmp_path)
    round0 = study_dir.states["A"][0]  # A's best val round
    round0.save(copy_dir / "artifacts" / "A" / "best-state.pt")
    report = analyze.analyze(copy_dir)
    detector = Detector.load(report.out / "best_detector.pt")
    scores = detector.score(results["A"].data.id_test.images)
    assert torch.equal(scores, round0.test_scores["id"][SCORE])
    assert not any("state is kept" in note for note in report.notes)


# ----------------------------------------------------------------------------- partial folders


def test_a_missing_round_file_is_reported_not_silently_reranked(study_dir: Built, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    folder = copy_study(study_dir, tmp_path)
    (folder / "results" / "rounds" / "A" / "round-0.parquet").unlink()  # A's best round
    assert analyze.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "note: trial A is incomplete and not ranked: rounds 0 have no rounds file" in out
    report = analyze.analyze(folder, out=tmp_path / "again")
    assert list(report.incomplete) == ["A"]
    # the winner is the best *complete* trial, and the note says A's recorded best beats it
    assert report.best_trial == "B"
    note = next(n for n in report.notes if n.startswith("trial A is incomplete"))
    assert "best val ue_tiered:auroc of 0.9900, better than the winner's 0.9000" in note
    board = pd.read_csv(report.out / "leaderboard.csv")
    assert "A" not in set(board["trial_id"]) and board["trial_id"].iloc[0] == "B"
    summary = pd.read_csv(report.out / "summary.csv").set_index("trial_id")
    assert "round" in summary.loc["A", "problems"]
    assert summary["problems"].drop("A").isna().all()
    text = (report.out / "report.md").read_text()
    assert "## Incomplete or inconsistent trials" in text and "| A |" in text
    detector = Detector.load(report.out / "best_detector.pt")  # B's, never A's
    b = study_dir.runs["B"]
    assert torch.equal(detector.score(b.data.id_test.images), b.state.test_scores["id"][SCORE])


def test_a_truncated_journal_is_a_note(study_dir: Built, tmp_path: Path) -> None:
    folder = copy_study(study_dir, tmp_path)
    journal = folder / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-20])  # a copy cut short mid-line
    report = analyze.analyze(folder)
    assert report.best_trial == "A" and not report.incomplete
    assert any("optuna.journal` is truncated" in n and "has no newline" in n
               for n in report.notes)
    assert "is truncated" in (report.out / "report.md").read_text()


def test_nothing_rankable_is_an_error(study_dir: Built, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    folder = copy_study(study_dir, tmp_path)
    shutil.rmtree(folder / "results" / "rounds")
    assert analyze.main([str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a study needs one complete trial to rank") and "A: " in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("case", ["missing", "empty", "objective"])
def test_cli_bad_input_is_one_error_line(case: str, study_dir: Built, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv, named = {"missing": ([str(tmp_path / "nope")], str(tmp_path / "nope")),
                   "empty": ([str(empty)], str(empty)),
                   "objective": ([study_dir.folder, "--objective", "ue:nope",
                                  "--out", str(tmp_path / "out")], "ue:nope")}[case]
    assert analyze.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err
    assert not (tmp_path / "out").exists()


def test_help_shows_the_examples() -> None:
    text = analyze.build_parser().format_help()
    assert "examples:" in text
    assert "python -m study.analyze studies/mnist-loss-weights --objective energy:fpr95" in text


def test_report_has_an_openood_summary_of_the_best_round(report: analyze.Report,
                                                         study_dir: Built) -> None:
    text = (report.out / "report.md").read_text()
    section = text.split("## OpenOOD-style summary\n", 1)[1].split("\n## ", 1)[0]
    # trial A's best round is 0, whose test AUROC the helper set to 0.30 on every set
    assert "| **near-OOD mean** | near | **30.00** |" in section
    assert "| **far-OOD mean** | far | **30.00** |" in section
    rows = [r for r in study_dir.runs["A"].records[0]["ood"]
            if r["split"] == "test" and r["score"] == SCORE and r["ood_set"] == "fashionmnist"]
    fpr = f"{100 * rows[0]['fpr95_ood_positive']:.2f}"
    assert any(line.startswith("| fashionmnist | near |") and line.endswith(f"| {fpr} |")
               for line in section.splitlines())
