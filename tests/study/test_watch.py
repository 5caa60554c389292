"""study.watch: the live display's text, its time-left estimate, and the MLflow URI rule.

The display is checked here on hand-built trial views; test_launch runs it (and MLflow) in a
real study.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from study import watch
from study.watch import TrialView, render, time_left


def trial(tid: str, status: str, rnd: int | None, obj: float | None = None,
          best: float | None = None, total: int | None = 3) -> TrialView:
    return TrialView(tid, status, rnd, None if rnd is None else total, obj, best)


TRIALS = [trial("a_00000", "done", 3, 0.80, 0.91), trial("a_00001", "running", 1, 0.95, 0.95),
          trial("a_00002", "failed", 0, 0.40, 0.40), trial("a_00003", "pending", None)]


def test_display_shows_status_round_objective_best_and_the_study_best() -> None:
    text = render(TRIALS, study="s1", objective="ue_tiered:auroc", mode="max", total=6,
                  elapsed_s=300.0, width=100)
    lines = text.splitlines()
    assert lines[0].startswith("study s1: 4/6 trials (1 pending, 1 running, 1 done, 1 failed, "
                               "2 to start) · 5m00s elapsed · ~")
    assert lines[1] == "best val ue_tiered:auroc (max): 0.9500 (trial a_00001)"
    assert lines[3].split() == ["a_00001", "running", "1/3", "0.9500", "0.9500"]  # running 1st
    assert lines[4].split() == ["a_00000", "done", "3/3", "0.8000", "0.9100"]
    assert lines[-1].split() == ["a_00003", "pending", "–", "–", "–"]


def test_minimised_objective_picks_the_lowest_best() -> None:
    text = render(TRIALS, study="s1", objective="energy:fpr95", mode="min", total=4,
                  elapsed_s=10.0, width=100)
    assert "best val energy:fpr95 (min): 0.4000 (trial a_00002)" in text


def test_every_line_fits_the_width() -> None:
    long = [trial(f"a_{i:05d}", "running", 2, 0.5, 0.5) for i in range(20)]
    text = render(long, study="a-study-with-a-long-name", objective="ue_tiered:auroc",
                  mode="max", total=30, elapsed_s=4000.0, width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert text.splitlines()[-1] == f"... and {20 - watch.MAX_ROWS} more trials"
    with pytest.raises(ValueError, match="width=10"):
        render(long, study="s", objective="o", mode="max", total=1, elapsed_s=1, width=10)


def test_time_left_from_the_rounds_per_second_so_far() -> None:
    # 4 rounds per trial (0..3); done 4 + 2 + 1 = 7 rounds in 70 s -> 10 s a round; left: the
    # running trial's 2, the pending trial's 4 and 2 trials not started (8): 14 rounds
    assert time_left(TRIALS, 6, 70.0) == pytest.approx(140.0)
    assert time_left([trial("x", "pending", None)], 3, 5.0) is None  # no round yet
    text = render(TRIALS, study="s", objective="o", mode="max", total=6, elapsed_s=70.0,
                  width=120, asha=True)
    assert "≤ ~2m20s left" in text  # with ASHA an upper bound


def test_mlflow_uri_defaults_to_a_sqlite_file_in_the_study(tmp_path: Path) -> None:
    assert watch.mlflow_uri(str(tmp_path), None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert watch.mlflow_uri(str(tmp_path), "") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert watch.mlflow_uri("mock:///b/s1", "http://h:5000") == "http://h:5000"
    with pytest.raises(ValueError, match="--mlflow needs a tracking URI .* 'mock:///b/s1'"):
        watch.mlflow_uri("mock:///b/s1", None)  # an object store (pyarrow's mock one)
