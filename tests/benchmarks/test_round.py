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


def run_round(data_root: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "round.py"), "--data-root",
                          str(data_root), *args, *SMALL],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return json.loads(out[out.index("{"):])


def test_naive_round_scores_every_image_the_reference_round_scores(data_root: Path) -> None:
    naive = run_round(data_root, "--naive")
    reference = run_round(data_root)
    assert naive["classifier_params"] == 220_299
    # ID val and test, and 3 OOD sets' val and test parts: not ID test alone
    assert naive["eval_images"] == reference["eval_images"] > 200 + 200
    assert naive["evaluate_s"] > naive["evaluate_id_test_s"] > 0


def test_the_naive_round_refuses_another_shape_before_any_work(data_root: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "round.py"), "--data-root",
                          str(data_root), "--naive", "--set", "data/id=cifar10", "--set",
                          "data/ood=mnist", *SMALL[:4]], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 2
    assert "written for 1x28x28 ID sets" in out.stderr and "'cifar10'" in out.stderr


def test_compare_times_both_rounds_alternately(data_root: Path) -> None:
    out = run_round(data_root, "--compare", "2")
    naive, lower = out["naive_round_s"], out["naive_id_test_eval_only_s"]
    assert len(naive) == len(lower) == len(out["reference_round_s"]) == 2
    assert all(whole > part > 0 for whole, part in zip(naive, lower))
    # the printed seconds are rounded to 3 decimals, the ratio to 2
    expected = min(naive) / min(out["reference_round_s"])
    assert out["ratio"]["of_minima"] == pytest.approx(expected, abs=0.011)
    assert out["ratio"]["of_minima"] >= out["ratio_to_id_test_eval_only"]["of_minima"]
    assert 0 <= out["reference_id_test_accuracy"] <= 1
    # where the host had put the vCPUs, read right before and after every timed round
    for readings in (*out["naive_core_to_core_ns"], *out["reference_core_to_core_ns"]):
        assert len(readings) == 2
        assert all(value is None or value > 0 for value in readings)
