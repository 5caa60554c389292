"""benchmarks/gpu_check.py on CPU: the missing-CUDA exit, the whole code path with a logical GPU
(tiny sizes), the worker-process fallback, and its figures and checks on made-up trials (the
CUDA memory branch included). Times are read by people, never asserted against."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
TINY = ["--train-limit", "300", "--test-limit", "100", "--trials", "2",
        "--budget-s", "1100"]  # the budget is a GPU-session bound; here only the hang guard counts


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # spawned workers import it by this name
    spec.loader.exec_module(module)
    return module


gc = _module()


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    env.pop("OUT", None)
    # a hang guard, not a speed check: quiet, the Ray smoke run takes about 40 s, but Ray runs
    # its trial workers at nice 15, so beside other work on 2 cores it once passed 300 s
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_2_naming_the_fix(tmp_path: Path, data_root: Path) -> None:
    done = _run(tmp_path, "--data-root", str(data_root))
    assert done.returncode == 2, done.stderr
    assert "error: CUDA is not available" in done.stderr and "--allow-cpu" in done.stderr
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "CUDA is not available" in summary["error"]
    assert summary["preflight"]["versions"]["torch"] == torch.__version__


@pytest.mark.slow
def test_cpu_smoke_runs_the_reference_round_and_fractional_studies(tmp_path: Path,
                                                                   data_root: Path) -> None:
    done = _run(tmp_path, "--allow-cpu", "--device", "cpu", "--data-root", str(data_root),
                *TINY, "--fractions", "1,0.25", "--mode", "ray", "--ref-repeats", "1",
                "--ood", "fashionmnist", "--set", "inversion/steps=5",
                "--set", "inversion/samples_per_round=50")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["passed"] and all(c["ok"] for c in summary["checks"])
    ref = summary["reference_round"]
    assert ref["round_s"] > 0 and not ref["full_size"] and 0 <= ref["id_test_accuracy"] <= 1
    rows = {row["fraction"]: row for row in summary["fractions"]}
    assert set(rows) == {1.0, 0.25}
    assert rows[1.0]["max_overlap"] == 1 and rows[0.25]["max_overlap"] == 2  # 2 trials, 4 slots
    assert all(row["trials"] == 2 and row["trials_per_gpu_hour"] > 0 for row in rows.values())
    assert summary["goals"] == {"note": "not on CUDA: the goals are GPU figures"}
    assert "gpus/trial | at once" in done.stdout


def test_worker_processes_run_trials_side_by_side(data_root: Path) -> None:
    tiny = {"rounds/device": "cpu", "data/ood": ["fashionmnist"], "data/root": str(data_root),
            "rounds/count": 1, "classifier/epochs": 1, "inversion/steps": 5}
    configs = [gc.sized({**c, **tiny}, 300, 100) for c in gc.quick_configs(2, 0)]
    run = gc.run_processes(configs, 0.5, 2, 1, "cpu")
    assert [t["status"] for t in run["trials"]] == ["completed", "completed"]
    assert len({t["pid"] for t in run["trials"]}) == 2
    checks: list[dict] = []
    row = gc.fraction_figures(run, 0.5, 2, "cpu", checks)
    assert row["max_overlap"] == 2 and all(c["ok"] for c in checks), checks


def _trial(start: float, end: float, peak: float | None = 100.0, cap: float = 1000.0,
           status: str = "completed") -> dict:
    trial = {"started": start, "ended": end, "status": status, "device": "cuda",
             "rounds_s": end - start, "rounds": 3, "gpu_mem_cap_mib": cap}
    if peak is not None:
        trial["peak_gpu_mem_mib"] = peak
    return trial


def test_figures_and_checks_of_four_cuda_trials_at_a_quarter() -> None:
    run = {"wall_s": 20.0, "trials": [_trial(0, 10), _trial(1, 10), _trial(2, 12),
                                      _trial(3, 12)]}
    checks: list[dict] = []
    row = gc.fraction_figures(run, 0.25, 4, "cuda", checks)
    assert all(c["ok"] for c in checks), checks
    assert row["max_overlap"] == 4 and row["span_s"] == 12
    assert row["trials_per_gpu_hour"] == 4 * 3600 / 12
    assert row["peak_gpu_mem_mib_max"] == 100 and row["gpu_mem_cap_mib"] == 1000


@pytest.mark.parametrize("trials, failing", [
    ([_trial(0, 5), _trial(5, 10), _trial(10, 15), _trial(15, 20)], "4 trials ran at once"),
    ([_trial(0, 9), _trial(0, 9), _trial(0, 9), _trial(0, 9, peak=1200)], "<= its cap"),
    ([_trial(0, 9), _trial(0, 9), _trial(0, 9), _trial(0, 9, peak=None)], "<= its cap"),
    ([_trial(0, 9), _trial(0, 9), _trial(0, 9), _trial(0, 9, status="failed")], "completed"),
])
def test_a_broken_setting_fails_its_check(trials: list[dict], failing: str) -> None:
    checks: list[dict] = []
    gc.fraction_figures({"wall_s": 30.0, "trials": trials}, 0.25, 4, "cuda", checks)
    failed = [c["check"] for c in checks if not c["ok"]]
    assert any(failing in name for name in failed), checks
    assert all("ran on cuda" not in name for name in failed)


def test_goals_judge_the_round_and_the_packing_ratio() -> None:
    summary = {"reference_round": {"round_s": 1.2, "full_size": True},
               "fractions": [{"fraction": 1.0, "trials_per_gpu_hour": 100.0},
                             {"fraction": 0.25, "trials_per_gpu_hour": 330.0}]}
    goals = gc.goals(summary, "cuda")
    assert goals["round_met"] is True and goals["packing"] == 3.3
    assert goals["packing_met"] is False


def test_plan_cuts_trials_then_train_images_to_fit_the_budget() -> None:
    fractions = [1.0, 0.25, 0.5]
    assert gc.plan(1000.0, 5.0, fractions, "processes", 8, 3000)[:2] == (8, 3000)
    n, limit, estimate = gc.plan(100.0, 5.0, fractions, "processes", 8, 3000)
    assert n == 4 and limit == 3000 and estimate <= 100
    n, limit, estimate = gc.plan(60.0, 20.0, fractions, "processes", 8, 3000)
    assert n == 4 and gc.MIN_TRAIN_LIMIT <= limit < 3000 and estimate <= 60 + 1e-6


def test_quick_configs_are_seeded_valid_configs() -> None:
    from netinv.config import Config

    first, again = gc.quick_configs(3, 7), gc.quick_configs(3, 7)
    assert first == again and first != gc.quick_configs(3, 8)
    for flat in first:
        assert Config.from_flat(flat).data.id == "mnist"
        assert 20 <= flat["inversion/steps"] <= 40
