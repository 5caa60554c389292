"""benchmarks/round.py on small real data: the naive round does the reference round's work
(every split scored, not ID test alone), and --compare prints both sides and their ratios
(figures are read by people, never asserted against a time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data/train_limit=600", "--set", "data/test_limit=200", "--set",
         "data/id_val_size=200", "--set", "inversion/steps=3", "--set",
         "inversion/samples_per_round=64", "--set", "garbage/noise_count=64", "--threads", "1"]


def run_round(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "round.py"), *args, *SMALL],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return json.loads(out[out.index("{"):])


def test_naive_round_scores_every_split_not_id_test_alone() -> None:
    naive = run_round("--naive")
    assert naive["classifier_params"] == 220_299
    assert naive["round_s"] == naive["invert_s"] + naive["train_s"] + naive["evaluate_s"]
    # ID val and 3 OOD sets' val and test parts come on top of the ID test part
    assert naive["evaluate_s"] > naive["evaluate_id_test_s"] > 0


def test_compare_times_both_rounds_alternately() -> None:
    out = run_round("--compare", "2")
    naive, lower = out["naive_round_s"], out["naive_id_test_eval_only_s"]
    assert len(naive) == len(lower) == len(out["reference_round_s"]) == 2
    assert all(whole > part > 0 for whole, part in zip(naive, lower))
    # the printed seconds are rounded to 3 decimals, the ratio to 2
    expected = min(naive) / min(out["reference_round_s"])
    assert out["ratio"]["of_minima"] == pytest.approx(expected, abs=0.011)
    assert out["ratio"]["of_minima"] > out["ratio_to_id_test_eval_only"]["of_minima"]
    assert 0 <= out["reference_id_test_accuracy"] <= 1
