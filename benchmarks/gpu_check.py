"""One command for a lent GPU: the CUDA path end to end, every figure printed and saved as JSON.

    python benchmarks/gpu_check.py --data-root ../shared/data --out /tmp/gc   # a GPU machine
    mkdir -p /tmp/data && tar -xJf gpu_data.tar.xz -C /tmp/data && set -o pipefail && \\
        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --data-root /tmp/data --out $OUT \\
        2>&1 | tee $OUT/gpu_check.log          # a lent one (docs/benchmarks.md, "GPU check")
    python benchmarks/gpu_check.py --allow-cpu --device cpu --train-limit 300 --trials 2 \\
        --fractions 1,0.25 --ood fashionmnist --set inversion/steps=5   # CPU smoke (the test)

1. Preflight: Python, torch, torchvision, Ray, Optuna and the other packages' versions, CUDA and
   the device's name, the data (decoded into the cache here, outside every timing). Exit 2 with
   one ``error:`` line naming what is missing: CUDA (unless ``--allow-cpu``), a package netinv
   needs, a dataset.
2. Reference round (``benchmarks/round.py``'s configuration and functions, bf16 autocast) on the
   device: round time and split, ID accuracy and mean test AUROC checked against the CPU
   figures of docs/benchmarks.md, peak CUDA memory.
3. Fractional GPUs: the same N ``quick``-space trials at each of ``--fractions`` (1, 0.25, 0.5:
   the ratio's two ends first), ``1/F`` trials at once on the one GPU. With Ray and Optuna
   (``--mode ray``) each setting is a real ``study.launch`` study (one local Ray instance for
   all, ``--gpus-per-trial F``, ``--no-asha``, ``--no-round0-cache`` so every trial does the
   same work); without them (``--mode processes``) ``1/F`` worker processes, each capped at
   ``F`` of the GPU's memory, run the same trials through ``run_rounds`` (no Ray, no Parquet,
   checkpoint or PNG writes: an upper bound on what a study gets). Per setting: wall seconds,
   the trials' span (first start to last end), trials per GPU-hour over that span, how many
   trials overlapped at most, each trial's peak CUDA memory against its cap.
4. ``--budget-s`` (default 480) bounds the whole run: a direct probe trial times one trial,
   then N (``--trials``, default 8) is cut in steps of 4, and below 4 the trials' train
   images, until the estimate fits; a setting that would no longer fit is skipped and says so.

Prints a table and writes ``<out>/gpu_check.json`` (``--out``, else ``$OUT``). Exit 0 when every
check passed, 1 when one failed, 2 when the preflight failed. The issue's goals (a reference
round under 1.5 s, at least 3.5x the trials per GPU-hour at 0.25 than at 1) are reported, not
checked: a missed goal is a finding, not a broken path.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
for _path in (str(REPO), str(BENCHMARKS)):  # netinv/study, and round.py beside this file
    if _path not in sys.path:
        sys.path.insert(0, _path)

EXIT_FAILED, EXIT_PREFLIGHT = 1, 2
FRACTIONS = "1,0.25,0.5"  # 1 and 0.25 first: the goal's ratio needs those two
DEFAULT_BUDGET_S = 480  # leaves 2 of a lent machine's 10-minute command limit spare
DEFAULT_TRIALS = 8
GOAL_ROUND_S = 1.5  # issue 12 item 4: a reference round on a GPU, seconds
GOAL_PACKING = 3.5  # issue 12 item 4: trials per GPU-hour at 0.25 over those at 1
# a full-size reference round on CPU (docs/benchmarks.md, seeds 0/1): ID accuracy 0.979-0.981,
# mean test AUROC 0.984-0.993 for these scores; bf16 on a GPU should land close by
CPU_REFERENCE = {"id_test_accuracy": 0.9808, "ue_tiered": 0.991, "msp": 0.991, "p_garbage": 0.987}
REF_MIN_ACCURACY = 0.97
REF_MIN_AUROC = 0.95
REF_SCORES = ("ue_tiered", "msp", "p_garbage")
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "sklearn", "matplotlib", "PIL", "pandas",
            "pyarrow", "ray", "optuna")
NETINV_NEEDS = ("torch", "torchvision", "numpy", "scipy", "sklearn", "matplotlib", "PIL")
STARTUP_S = {"ray": 20.0, "processes": 10.0}  # per setting: actors or workers start, torch import
TRIAL_OVERHEAD_S = {"ray": 1.0, "processes": 0.1}  # per trial: Parquet, PNG, checkpoint writes
RAY_START_S = 15.0
RESERVE_S = 15.0  # summary, shutdown
MIN_TRAIN_LIMIT = 500


_START = time.perf_counter()  # reset by main: the headings show seconds since the start


def heading(text: str) -> None:
    print(f"== {text}  [{time.perf_counter() - _START:.1f} s]", flush=True)


class PreflightError(RuntimeError):
    """Something the check needs is missing; the message names it and what to do."""


# ----------------------------------------------------------------------------- preflight


def versions() -> dict[str, str | None]:
    """Each package's version, None when it does not import."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception:  # an ImportError, or a package that breaks on import
            found[name] = None
    return found


def preflight(args: argparse.Namespace, info: dict[str, Any]) -> None:
    """Versions, CUDA, the device and the mode into ``info``; raises PreflightError naming
    what is missing (``info`` then holds what was found up to there)."""
    found = info["versions"] = versions()
    for name, version in found.items():
        print(f"  {name:12s} {version or 'MISSING'}")
    missing = [name for name in NETINV_NEEDS if found[name] is None]
    if missing:
        raise PreflightError(f"netinv needs {', '.join(missing)}, which do not import here.")
    import torch

    info.update(cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda,
                cpus=os.cpu_count())
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_mem_mib=round(props.total_memory / 2**20),
                    capability=f"{props.major}.{props.minor}")
        print(f"  CUDA         {torch.version.cuda}: {props.name}, "
              f"{info['gpu_mem_mib']} MiB, {info['gpu_count']} device(s)")
    else:
        print(f"  CUDA         not available (torch built with CUDA {torch.version.cuda})")
    if not info["cuda_available"] and not args.allow_cpu:
        raise PreflightError(f"CUDA is not available (torch {torch.__version__}, built with "
                             f"CUDA {torch.version.cuda}): this check needs a GPU; run it on "
                             f"the lent GPU machine, or pass --allow-cpu --device cpu for a "
                             f"CPU smoke run (no GPU figures).")
    device = args.device or ("cuda" if info["cuda_available"] else "cpu")
    if device.startswith("cuda") and not info["cuda_available"]:
        raise PreflightError(f"--device {device} asks for CUDA, which is not available; use "
                             f"--device cpu with --allow-cpu.")
    if not device.startswith("cuda") and not args.allow_cpu:
        raise PreflightError(f"--device {device} needs --allow-cpu (a smoke run, no GPU "
                             f"figures).")
    info["device"] = device
    have_study = found["ray"] is not None and found["optuna"] is not None
    mode = args.mode if args.mode != "auto" else ("ray" if have_study else "processes")
    if mode == "ray" and not have_study:
        raise PreflightError("--mode ray needs ray and optuna, which do not import here; use "
                             "--mode processes (or auto).")
    if mode == "processes":
        print("  mode         processes: Ray or Optuna missing (or --mode processes): the "
              "fractional trials run as worker processes, not through study.launch")
    info["mode"] = mode


def prepare(flat: dict[str, Any]) -> float:
    """Decode the data of ``flat`` into the cache; seconds taken. PreflightError if missing."""
    from netinv.config import Config
    from netinv.data import DataUnavailableError
    from netinv.pipeline import prepare_data

    t0 = time.perf_counter()
    try:
        prepare_data(Config.from_flat(flat))
    except DataUnavailableError as exc:
        raise PreflightError(f"data missing: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:  # a bad --set, say
        raise PreflightError(f"the config is not valid: {exc}") from None
    return time.perf_counter() - t0


def sized(flat: dict[str, Any], train_limit: int | None, test_limit: int | None
          ) -> dict[str, Any]:
    """``flat`` with the train and test limits (None keeps its own); ID validation shrinks to
    a sixth of a smaller train set."""
    from netinv.config import Config

    out = dict(flat)
    if train_limit is not None:
        own = out.get("data/id_val_size", Config().data.id_val_size)
        out["data/train_limit"] = train_limit
        out["data/id_val_size"] = max(1, min(own, train_limit // 6))
    if test_limit is not None:
        out["data/test_limit"] = test_limit
    return out


# ----------------------------------------------------------------------------- reference round


def reference_flat(reference: dict[str, Any], args: argparse.Namespace | None, device: str,
                   data_root: str) -> dict[str, Any]:
    """round.py's reference config on ``device`` with bf16 autocast, resized by ``args``
    (``--set``, ``--train-limit``, ``--test-limit``, ``--ood``); None = full size."""
    flat = dict(reference)
    if args is not None:
        flat = sized({**flat, **dict(item.split("=", 1) for item in args.set)},
                     args.train_limit, args.test_limit)
        if args.ood:
            flat["data/ood"] = args.ood
    return {**flat, "data/root": data_root, "rounds/device": device, "rounds/amp": True}


def reference_phase(args: argparse.Namespace, device: str, data_root: str,
                    checks: list[dict[str, Any]]) -> dict[str, Any]:
    """round.py's reference round on ``device``, ``--ref-repeats`` times (each: round 0 warms
    up, round 1 is timed); the figures are those of the fastest round 1."""
    import torch

    import round as bench  # benchmarks/round.py
    from netinv.config import Config
    from netinv.inference import resolve_device, uses_bf16
    from netinv.pipeline import prepare_data

    flat = reference_flat(bench.REFERENCE, args, device, data_root)
    full = flat == reference_flat(bench.REFERENCE, None, device, data_root)
    config = Config.from_flat(flat)
    data = prepare_data(config)
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runs = [bench.reference_round(config, data)[0] for _ in range(max(1, args.ref_repeats))]
    timed = min(runs, key=lambda record: record["time_round_s"])  # later runs: warm kernels
    models = bench.model_figures(config, data)
    fixed = ("data/root", "rounds/device", "rounds/amp")
    out = {"full_size": full, "overrides": {k: v for k, v in flat.items()
                                            if k not in fixed and bench.REFERENCE.get(k) != v},
           "bf16_used": uses_bf16(dev, config.rounds.amp),
           **bench.round_figures(config, data, timed, models),
           "round_s_runs": [round(r["time_round_s"], 3) for r in runs], **models}
    if dev.type == "cuda":
        out["peak_cuda_allocated_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20)
        out["peak_cuda_reserved_mib"] = round(torch.cuda.max_memory_reserved(dev) / 2**20)
        torch.cuda.empty_cache()

    values = [out["id_test_accuracy"], *out["mean_test_auroc"].values()]
    check(checks, "reference round: accuracy and AUROCs finite, in [0, 1]",
          all(math.isfinite(v) and 0 <= v <= 1 for v in values), f"{values}")
    if full:
        check(checks, f"reference round: ID test accuracy >= {REF_MIN_ACCURACY}",
              out["id_test_accuracy"] >= REF_MIN_ACCURACY,
              f"{out['id_test_accuracy']} (CPU: {CPU_REFERENCE['id_test_accuracy']})")
        for score in REF_SCORES:
            got = out["mean_test_auroc"][score]
            check(checks, f"reference round: {score} mean test AUROC >= {REF_MIN_AUROC}",
                  got >= REF_MIN_AUROC, f"{got} (CPU: {CPU_REFERENCE[score]})")
    else:
        print("  (reference round resized: accuracy and AUROC thresholds not applied)")
    return out


# ----------------------------------------------------------------------------- trials


class Draw:
    """Stands in for an Optuna trial: each suggestion drawn uniformly (log-uniformly with
    ``log=True``) from a seeded generator and kept in ``params``, so the quick space is
    sampled without Optuna."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.number, self.params = rng, 0, {}

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False,
                      step: float | None = None) -> float:
        value = (math.exp(self.rng.uniform(math.log(low), math.log(high))) if log
                 else self.rng.uniform(low, high))
        self.params[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False,
                    step: int = 1) -> int:
        self.params[name] = self.rng.randrange(low, high + 1, step)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]


def quick_configs(n: int, seed: int) -> list[dict[str, Any]]:
    """N flat configs of the quick space (suggestions + constants), seeded."""
    from search_spaces.quick import space

    rng = random.Random(seed)
    configs = []
    for _ in range(n):
        draw = Draw(rng)
        constants = space(draw)
        configs.append({**draw.params, **constants})
    return configs


_DATA_MEMO: dict[Any, Any] = {}  # a worker's prepared data, as study.trainable keeps it


_START: dict[str, Any] = {}  # a worker's start barrier, until its first trial has waited on it


def _init_worker(device: str, fraction: float, threads: int, ready: Any) -> None:
    import torch

    import netinv.pipeline  # noqa: F401  imported here so that no trial's time includes it

    torch.set_num_threads(threads)
    if device.startswith("cuda") and 0 < fraction < 1:
        torch.cuda.set_per_process_memory_fraction(fraction, torch.device(device))
    _START["barrier"] = ready


def run_trial(flat: dict[str, Any], fraction: float = 1.0) -> dict[str, Any]:
    """One trial's work, as a study trial does it (``run_rounds``, data memoised per process,
    peak memory counted from the trial's start); returns its times and figures."""
    import torch

    from netinv.config import Config
    from netinv.inference import cuda_memory, resolve_device
    from netinv.pipeline import prepare_data, run_rounds

    config = Config.from_flat(flat)
    device = resolve_device(config.rounds.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.time()
    key = (config.data, config.rounds.seed)
    if key not in _DATA_MEMO:
        _DATA_MEMO.clear()
        _DATA_MEMO[key] = prepare_data(config)
    records = run_rounds(config, data=_DATA_MEMO[key]).records
    ended = time.time()
    return {"started": started, "ended": ended, "pid": os.getpid(), "device": str(device),
            "rounds_s": sum(r["time_round_s"] for r in records), "rounds": len(records),
            "id_test_accuracy": records[-1]["id_test_accuracy"],
            **cuda_memory(device, fraction)}


def _worker_trial(job: tuple[dict[str, Any], float]) -> dict[str, Any]:
    try:
        # Workers take seconds to start, not all equally fast: each one's first trial waits,
        # holding its job, until every worker holds one, so that the first worker ready cannot
        # run a short trial (or two) before the last one starts and "side by side" be measured
        # as one at a time. A worker that never arrives breaks the barrier: the trial fails.
        if "barrier" in _START:
            _START.pop("barrier").wait(timeout=600)
        return {**run_trial(*job), "status": "completed"}
    except Exception as exc:  # reported as a failed trial; the other trials go on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "device": job[0].get("rounds/device", "?"), "started": None, "ended": None,
                "rounds_s": 0.0, "rounds": 0}


def run_processes(configs: list[dict[str, Any]], fraction: float, concurrent: int,
                  threads: int, device: str) -> dict[str, Any]:
    """The trials in ``concurrent`` spawned workers, each capped at ``fraction`` of the GPU (a
    worker that dies raises BrokenProcessPool rather than leaving the run waiting)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # never fork a process that holds CUDA
    # the pool spawns one worker per queued job up to ``concurrent``: that many meet at the start
    ready = context.Barrier(max(1, min(concurrent, len(configs))))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(concurrent, mp_context=context, initializer=_init_worker,
                             initargs=(device, fraction, threads, ready)) as pool:
        rows = list(pool.map(_worker_trial, [(c, fraction) for c in configs]))
    return {"wall_s": time.perf_counter() - t0, "trials": rows}


RAY_SPACE_FILE = '''"""gpu_check's quick-space configs, one per Optuna trial number."""

CONFIGS = {configs!r}


def space(trial) -> dict:
    return dict(CONFIGS[trial.number % len(CONFIGS)])
'''


def ray_argv(folder: Path, name: str, n: int, fraction: float, concurrent: int,
             cpus: float, data_root: str, device: str) -> list[str]:
    argv = ["--space", str(folder / "gpu_check_space.py"), "--name", name,
            "--storage", str(folder), "--num-samples", str(n),
            "--max-concurrent", str(concurrent), "--cpus-per-trial", f"{cpus:g}",
            "--gpus-per-trial", f"{fraction:g}", "--no-asha", "--sampler", "random",
            "--no-round0-cache", "--data-root", data_root]
    if not device.startswith("cuda"):
        argv += ["--num-gpus", "1"]  # a logical GPU: fractional scheduling on a CPU machine
    return argv


def run_ray(argv: list[str]) -> dict[str, Any]:
    """One study through study.launch (Ray already started); its trials from the Parquet
    rows, their peak memory from the last result each reported to Tune."""
    from study import launch
    from study import results as R

    opts = launch.parse_options(argv)
    t0 = time.perf_counter()
    grid = launch.run(opts)
    wall = time.perf_counter() - t0
    last = {}
    try:
        frame = grid.get_dataframe()
        last = {row["trial_id"]: row for row in frame.to_dict("records")}
    except Exception as exc:  # no results at all: the checks below say so
        print(f"  (no Tune results: {exc})")
    trials = R.read_table(opts.study_dir, "trials")
    rounds = R.read_table(opts.study_dir, "rounds")
    rows = []
    for row in trials.to_dict("records"):
        mine = rounds[rounds[R.TRIAL_ID] == row[R.TRIAL_ID]]
        result = last.get(row[R.TRIAL_ID], {})
        rows.append({
            "trial_id": row[R.TRIAL_ID], "status": row["status"], "device": row["device"],
            "started": _timestamp(row["started_at"]), "ended": _timestamp(row["ended_at"]),
            "rounds_s": float(mine[R.TIME_ROUND_S].sum()), "rounds": len(mine),
            "id_test_accuracy": (float(mine.sort_values(R.ROUND)[R.ID_TEST_ACCURACY].iloc[-1])
                                 if len(mine) else None),
            **{k: result[k] for k in ("peak_gpu_mem_mib", "gpu_mem_cap_mib")
               if k in result and result[k] == result[k]},
        })
    return {"wall_s": wall, "trials": rows, "errors": len(grid.errors)}


def _timestamp(value: Any) -> float | None:
    """A Parquet timestamp as epoch seconds; None for a missing one (None or NaT)."""
    return None if value is None or value != value else value.timestamp()


def fraction_figures(run: dict[str, Any], fraction: float, concurrent: int, device: str,
                     checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Span, trials per GPU-hour, overlap and memory of one setting, and its checks."""
    from study.tables import max_concurrent

    label = f"gpus-per-trial {fraction:g}"
    trials = run["trials"]
    n = len(trials)
    done = [t for t in trials if t["status"] == "completed"
            and t["started"] is not None and t["ended"] is not None]
    check(checks, f"{label}: every trial completed", len(done) == n and n > 0
          and not run.get("errors"), f"{len(done)} of {n}")
    intervals = [(t["started"], t["ended"]) for t in done]
    span = max(e for _, e in intervals) - min(s for s, _ in intervals) if intervals else 0.0
    overlap = max_concurrent([s for s, _ in intervals], [e for _, e in intervals])
    expect = min(concurrent, n)
    check(checks, f"{label}: {expect} trials ran at once", overlap == expect,
          f"at most {overlap} overlapped")
    devices = sorted({t["device"] for t in trials})
    check(checks, f"{label}: trials ran on {device}",
          all(d.split(":")[0] == device.split(":")[0] for d in devices), f"{devices}")
    out = {"fraction": fraction, "concurrent": concurrent, "trials": n,
           "wall_s": round(run["wall_s"], 2), "span_s": round(span, 2),
           "trials_per_gpu_hour": round(n * 3600 / span, 1) if span > 0 else None,
           "trials_per_gpu_hour_wall": round(n * 3600 / run["wall_s"], 1),
           "max_overlap": overlap,
           "mean_trial_s": round(sum(e - s for s, e in intervals) / max(1, len(intervals)), 2),
           "rounds_compute_s": round(sum(t["rounds_s"] for t in trials), 2)}
    if device.startswith("cuda"):
        peaks = [t.get("peak_gpu_mem_mib") for t in trials]
        caps = [t.get("gpu_mem_cap_mib") for t in trials]
        known = all(p is not None and c is not None for p, c in zip(peaks, caps))
        check(checks, f"{label}: each trial's peak CUDA memory <= its cap",
              known and all(p <= c for p, c in zip(peaks, caps)),
              f"peaks {[None if p is None else round(p) for p in peaks]} MiB, cap "
              f"{None if not caps or caps[0] is None else round(caps[0])} MiB")
        if known:
            out.update(peak_gpu_mem_mib_max=round(max(peaks)), gpu_mem_cap_mib=round(caps[0]))
    return out


# ----------------------------------------------------------------------------- budget


def plan(budget_left: float, trial_s: float, fractions: list[float], mode: str,
         n_max: int, train_limit: int) -> tuple[int, int, float]:
    """(N, train limit, estimated seconds) that fit ``budget_left``: N cut in steps of the
    largest concurrency, then the train images cut in proportion, down to MIN_TRAIN_LIMIT.

    A setting of concurrency c is estimated at start-up + N x (trial + overhead) / min(c, 2):
    sharing is assumed to double throughput at most, so the estimate errs long.
    """
    step = max(round(1 / f) for f in fractions)

    def estimate(n: int, scale: float) -> float:
        per = trial_s * scale + TRIAL_OVERHEAD_S[mode]
        return sum(STARTUP_S[mode] + n * per / min(round(1 / f), 2) for f in fractions)

    n = n_max
    while n - step >= step and estimate(n, 1.0) > budget_left:
        n -= step
    scale = 1.0
    if estimate(n, 1.0) > budget_left:
        fixed = estimate(n, 0.0)
        scale = max(MIN_TRAIN_LIMIT / train_limit,
                    (budget_left - fixed) / max(1e-9, estimate(n, 1.0) - fixed))
        scale = min(1.0, scale)
    return n, int(train_limit * scale), estimate(n, scale)


# ----------------------------------------------------------------------------- output


def check(checks: list[dict[str, Any]], name: str, ok: bool, detail: str) -> None:
    checks.append({"check": name, "ok": bool(ok), "detail": detail})
    print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("gpus/trial", "at once", "trials", "wall s", "span s", "trials/GPU-h",
            "x vs 1", "max overlap", "peak/cap MiB")
    base = next((r["trials_per_gpu_hour"] for r in rows if r["fraction"] == 1), None)
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        ratio = (f"{r['trials_per_gpu_hour'] / base:.2f}" if base and r["trials_per_gpu_hour"]
                 else "-")
        memory = (f"{r['peak_gpu_mem_mib_max']}/{r['gpu_mem_cap_mib']}"
                  if "peak_gpu_mem_mib_max" in r else "-")
        lines.append(" | ".join(str(x) for x in (
            f"{r['fraction']:g}", r["concurrent"], r["trials"], r["wall_s"], r["span_s"],
            r["trials_per_gpu_hour"], ratio, r["max_overlap"], memory)))
    return "\n".join(lines)


def goals(summary: dict[str, Any], device: str) -> dict[str, Any]:
    """The issue's two goals, with the figures they are judged on (None: not measured)."""
    if not device.startswith("cuda"):
        return {"note": "not on CUDA: the goals are GPU figures"}
    ref = summary.get("reference_round") or {}
    rows = {r["fraction"]: r for r in summary.get("fractions", [])}
    out: dict[str, Any] = {"round_s": ref.get("round_s"), "round_s_goal": GOAL_ROUND_S}
    out["round_met"] = (None if out["round_s"] is None or not ref.get("full_size")
                        else out["round_s"] < GOAL_ROUND_S)
    one, quarter = rows.get(1.0), rows.get(0.25)
    ratio = (quarter["trials_per_gpu_hour"] / one["trials_per_gpu_hour"]
             if one and quarter and one["trials_per_gpu_hour"] and
             quarter["trials_per_gpu_hour"] else None)
    out.update(packing=None if ratio is None else round(ratio, 2), packing_goal=GOAL_PACKING,
               packing_met=None if ratio is None else ratio >= GOAL_PACKING)
    return out


def save(out_dir: str | None, summary: dict[str, Any]) -> str:
    """Write ``<out_dir>/gpu_check.json`` (after every phase: a run killed at its time limit
    still leaves what it measured); returns the JSON text."""
    text = json.dumps(summary, indent=2, default=str)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "gpu_check.json").write_text(text + "\n")
    return text


def write(out_dir: str | None, summary: dict[str, Any]) -> None:
    print(save(out_dir, summary))
    if out_dir:
        print(f"wrote {Path(out_dir) / 'gpu_check.json'}")


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None,
                   help="data folder (default: $NETINV_DATA, else ../shared/data)")
    p.add_argument("--out", default=None, help="folder for gpu_check.json (default: $OUT)")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                   help=f"seconds the whole check may take (default: {DEFAULT_BUDGET_S})")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--allow-cpu", action="store_true",
                   help="run without CUDA (a smoke run of the code path, no GPU figures)")
    p.add_argument("--mode", default="auto", choices=("auto", "ray", "processes"),
                   help="fractional trials through study.launch (ray) or worker processes "
                        "(default: ray when Ray and Optuna import)")
    p.add_argument("--fractions", default=FRACTIONS,
                   help=f"GPU fractions per trial, in run order (default: {FRACTIONS})")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"trials per fraction at most; the budget may cut it "
                        f"(default: {DEFAULT_TRIALS})")
    p.add_argument("--cpus-per-trial", type=float, default=None,
                   help="CPUs per trial, the same at every fraction (default: this machine's "
                        "CPUs over the largest concurrency)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="ID train images of the reference round and the trials (default: "
                        "theirs: 60k and 3k)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="ID test images and per OOD split, both phases (default: theirs)")
    p.add_argument("--ood", default=None,
                   help="comma list of OOD sets for the reference round (default: round.py's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a reference-round setting (repeatable)")
    p.add_argument("--ref-repeats", type=int, default=2,
                   help="reference rounds run; the fastest counts (default: 2)")
    p.add_argument("--skip-reference", action="store_true", help="fractional trials only")
    p.add_argument("--seed", type=int, default=0, help="seed of the trials' configs")
    args = p.parse_args(argv)
    if any("=" not in item for item in args.set):
        p.error(f"--set takes KEY=VALUE, got {args.set}")
    try:
        args.fraction_list = [float(x) for x in args.fractions.split(",") if x.strip()]
    except ValueError:
        p.error(f"--fractions takes a comma list of numbers, got {args.fractions!r}")
    if not args.fraction_list or any(not 0 < f <= 1 or abs(round(1 / f) * f - 1) > 1e-9
                                     for f in args.fraction_list):
        p.error(f"--fractions must be 1/k for whole k (1, 0.5, 0.25, ...), got "
                f"{args.fractions!r}")
    if args.trials < 1 or args.budget_s <= 0:
        p.error(f"--trials must be >= 1 and --budget-s > 0, got trials={args.trials}, "
                f"budget_s={args.budget_s:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    global _START
    args = parse_args(argv)
    t_start = _START = time.perf_counter()

    def left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    out_dir = args.out or os.environ.get("OUT") or None
    data_root = str(Path(args.data_root or os.environ.get("NETINV_DATA")
                         or REPO.parent / "shared" / "data").resolve())
    checks: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv,
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "budget_s": args.budget_s, "data_root": data_root,
                               "checks": checks}

    # 1. preflight: packages, CUDA, data (decoded into the cache, outside every timing)
    heading("preflight")
    try:
        info = summary["preflight"] = {}
        preflight(args, info)
        device, mode = info["device"], info["mode"]
        import round as bench  # benchmarks/round.py (imports torch, so after the preflight)

        configs = [sized({**c, "rounds/device": device}, args.train_limit, args.test_limit)
                   for c in quick_configs(args.trials, args.seed)]
        prepare_s = prepare({**configs[0], "data/root": data_root})
        if not args.skip_reference:
            prepare_s += prepare(reference_flat(bench.REFERENCE, args, device, data_root))
        info["prepare_s"] = round(prepare_s, 2)
        print(f"  data         {data_root}: ready ({prepare_s:.1f} s to decode or load)")
        save(out_dir, summary)
    except PreflightError as exc:
        summary["error"] = str(exc)
        write(out_dir, summary)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PREFLIGHT

    # 2. the reference round on the device
    if not args.skip_reference:
        heading(f"reference round on {device}, {args.ref_repeats} run(s)")
        with phase(checks, "reference round ran"):
            ref = summary["reference_round"] = reference_phase(args, device, data_root, checks)
            print(f"  round {ref['round_s']} s (train {ref['train_s']}, invert "
                  f"{ref['invert_s']}, evaluate {ref['evaluate_s']}), ID accuracy "
                  f"{ref['id_test_accuracy']}, mean test AUROC {ref['mean_test_auroc']}")
        save(out_dir, summary)

    # 3. fractional GPUs: probe one trial directly, fit N to the budget, then each setting
    rows: list[dict[str, Any]] = []
    summary["fractions"] = rows
    with phase(checks, "fractional trials ran"):
        fractional(args, summary, configs, device, mode, data_root, left, checks,
                   lambda: save(out_dir, summary))

    # 4. summary
    summary["goals"] = goals(summary, device)
    summary["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    failed = [c["check"] for c in checks if not c["ok"]]
    summary["passed"] = not failed
    write(out_dir, summary)
    print(f"\n{table(rows)}\n")
    print(f"goals: {json.dumps(summary['goals'])}")
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed in "
          f"{summary['elapsed_s']} s" + (f"; failed: {failed}" if failed else ""))
    return EXIT_FAILED if failed else 0


@contextlib.contextmanager
def phase(checks: list[dict[str, Any]], name: str) -> Iterator[None]:
    """Run a phase; an exception in it becomes a failed check, and the run goes on."""
    try:
        yield
    except Exception as exc:
        traceback.print_exc()
        check(checks, name, False, f"{type(exc).__name__}: {exc}")


def fractional(args: argparse.Namespace, summary: dict[str, Any],
               configs: list[dict[str, Any]], device: str, mode: str, data_root: str,
               left: Any, checks: list[dict[str, Any]], saved: Any) -> None:
    """Probe, plan, then the N trials at each fraction (rows appended to summary, ``saved()``
    after each)."""
    import torch

    fractions = args.fraction_list
    c_max = max(round(1 / f) for f in fractions)
    cpus_here = os.cpu_count() or 1
    cpus = args.cpus_per_trial or (cpus_here // c_max if cpus_here >= c_max
                                   else cpus_here / c_max)
    threads = max(1, int(cpus))
    heading(f"fractional trials ({mode}); probe: one quick trial directly on {device}")
    torch.set_num_threads(threads)
    probe = run_trial({**configs[0], "data/root": data_root})
    probe_s = probe["ended"] - probe["started"]
    trial_s = probe_s / probe["rounds"] * (sum(c["rounds/count"] + 1 for c in configs)
                                           / len(configs))
    train_limit = configs[0]["data/train_limit"]
    budget = left() - RESERVE_S - (RAY_START_S if mode == "ray" else 0.0)
    n, limit, estimate = plan(budget, trial_s, fractions, mode, args.trials, train_limit)
    configs = [sized(c, limit, None) if limit < train_limit else c for c in configs[:n]]
    trial_s *= limit / train_limit  # as plan() assumes: a trial's time scales with its images
    summary["plan"] = {"probe_trial_s": round(probe_s, 2), "trial_s_estimate": round(trial_s, 2),
                       "trials": n, "train_limit": limit, "cpus_per_trial": cpus,
                       "estimate_s": round(estimate, 1), "budget_left_s": round(budget, 1)}
    print(f"  probe trial {probe_s:.2f} s; plan: {n} trials per fraction, train_limit {limit}, "
          f"{cpus:g} CPUs per trial, about {estimate:.0f} s of {budget:.0f} s left")
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    folder = Path(tempfile.mkdtemp(prefix="netinv-gpu-check-"))
    ray_started = False
    try:
        if mode == "ray":
            from study import launch
            from study.resources import init_ray

            (folder / "gpu_check_space.py").write_text(RAY_SPACE_FILE.format(configs=configs))
            ray_started = init_ray(launch.parse_options(ray_argv(
                folder, "init", n, fractions[0], 1, cpus, data_root, device)))
        for fraction in fractions:
            concurrent = round(1 / fraction)
            need = STARTUP_S[mode] + n * (trial_s + TRIAL_OVERHEAD_S[mode]) / min(concurrent, 2)
            if need > left() - RESERVE_S:
                check(checks, f"gpus-per-trial {fraction:g}: ran within the budget", False,
                      f"skipped: about {need:.0f} s needed, {left() - RESERVE_S:.0f} s left")
                continue
            heading(f"gpus-per-trial {fraction:g}: {n} trials, {concurrent} at once")
            if mode == "ray":
                name = f"f{fraction:g}".replace(".", "p")
                run = run_ray(ray_argv(folder, name, n, fraction, concurrent, cpus, data_root,
                                       device))
            else:
                run = run_processes([{**c, "data/root": data_root} for c in configs],
                                    fraction, concurrent, threads, device)
            summary["fractions"].append(fraction_figures(run, fraction, concurrent, device,
                                                         checks))
            saved()
    finally:
        if ray_started:
            import ray

            ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
