"""benchmarks/mlflow_logging.py runs both callbacks on real SQLite stores and prints one JSON
object (its seconds are read by people, never asserted against a time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_prints_both_callbacks_figures_and_that_the_stores_agree() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "mlflow_logging.py"), "--trials", "1",
         "--reports", "2", "--ood-sets", "2"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout
    figures = json.loads(out)
    assert figures["same_metrics_and_params"] is True
    for name in ("ray", "batched"):
        assert figures[name]["s_per_report"] > 0 and figures[name]["s_per_trial_start"] > 0
        # a round's report: per split x score x (2 sets + their mean) several metrics each
        assert figures[name]["metrics_per_report"] > 2 * 5 * 3 * 4
