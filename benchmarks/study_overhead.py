"""What Ray Tune + Optuna cost on top of the pipeline: N quick-space trials both ways.

    python benchmarks/study_overhead.py --data-root ../shared/data --trials 4
    python benchmarks/study_overhead.py --trials 8 --max-concurrent 2 --cpus-per-trial 1

The same N configs (drawn from the ``quick`` space by a seeded Optuna random sampler, so both
arms run identical work) are run (a) through ``study.launch`` (local Ray, OptunaSearch with a
journal, Parquet rows, artifacts, checkpoints each round) and (b) directly with
``netinv.pipeline.run_rounds`` one after another in this process (data prepared once, no
writes). Prints one JSON object: wall seconds of each arm, per trial, the overhead ratio, and the Tune
arm's split into start-up (once per launch) and overhead per trial (from its Parquet rows).
With ``--max-concurrent`` above 1 the Tune arm also gains from running trials side by side.
Both arms compute every round 0 (like for like) unless ``--round0-cache`` gives both a fresh
round-0 cache (:mod:`netinv.round0_cache`), so trials sharing round-0 settings train it once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPACE_FILE = '''"""The benchmark's quick-space configs, one per Optuna trial number."""

CONFIGS = {configs!r}


def space(trial) -> dict:
    return dict(CONFIGS[trial.number % len(CONFIGS)])
'''


def sample_configs(n: int, seed: int) -> list[dict]:
    """N flat configs from the quick space (suggestions + constants), seeded."""
    import optuna

    from search_spaces.quick import space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


def run_direct(configs: list[dict], data_root: str, threads: int, round0_cache: bool) -> float:
    import torch

    from netinv.config import Config
    from netinv.pipeline import run_rounds
    from netinv.round0_cache import Round0Cache

    torch.set_num_threads(threads)
    data = None
    cache = Round0Cache(tempfile.mkdtemp(prefix="netinv-r0-")) if round0_cache else None
    t0 = time.perf_counter()
    for flat in configs:
        config = Config.from_flat({**flat, "data/root": data_root, "rounds/device": "cpu"})
        data = run_rounds(config, data=data, round0_cache=cache).data
    return time.perf_counter() - t0


def breakdown(study_dir: Path, tune_s: float) -> dict:
    """Where the Tune arm's extra time went, from the study's own Parquet rows: ``startup_s``
    (Ray start, space and data checks, shutdown: once per launch), and per trial
    ``per_trial_overhead_s`` (trial span minus the rounds' own time: actor reuse, Tune's
    scheduling and reports, the Parquet/PNG/checkpoint writes), with one trial at a time."""
    from study import results as R

    trials = R.read_table(str(study_dir), "trials")
    rounds = R.read_table(str(study_dir), "rounds")
    span = (trials["ended_at"].max() - trials["started_at"].min()).total_seconds()
    spent = rounds["round0_cached"].fillna(False) == False  # noqa: E712 (a hit's times are
    compute = float(rounds.loc[spent, R.TIME_ROUND_S].sum())  # those of the run it came from)
    return {"startup_s": round(tune_s - span, 2), "trials_span_s": round(span, 2),
            "rounds_compute_s": round(compute, 2),
            "per_trial_overhead_s": round((span - compute) / len(trials), 2)}


def run_tune(configs: list[dict], data_root: str, args: argparse.Namespace
             ) -> tuple[float, dict]:
    from study import launch

    folder = Path(tempfile.mkdtemp(prefix="netinv-bench-"))
    try:
        space = folder / "bench_space.py"
        space.write_text(SPACE_FILE.format(configs=configs))
        argv = ["--space", str(space), "--name", "bench", "--storage", str(folder),
                "--num-samples", str(len(configs)), "--max-concurrent",
                str(args.max_concurrent), "--cpus-per-trial", str(args.cpus_per_trial),
                "--gpus-per-trial", "0", "--no-asha", "--sampler", "random",
                "--data-root", data_root]
        if args.round0_cache:  # a fresh one, read by the trials (Ray workers inherit it)
            os.environ["NETINV_ROUND0_CACHE"] = str(folder / "round0")
        else:
            argv.append("--no-round0-cache")
        t0 = time.perf_counter()
        code = launch.main(argv)
        elapsed = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"study.launch failed with exit code {code}")
        return elapsed, breakdown(folder / "bench", elapsed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=4, help="N trials per arm (default: 4)")
    p.add_argument("--max-concurrent", type=int, default=1,
                   help="Tune trials at once (default: 1, a like-for-like comparison)")
    p.add_argument("--cpus-per-trial", type=int, default=2,
                   help="CPUs per Tune trial and torch threads of the direct arm (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    p.add_argument("--round0-cache", action="store_true",
                   help="both arms share round 0 through a fresh round-0 cache "
                        "(default: both compute every round 0)")
    p.add_argument("--data-root", default=os.environ.get("NETINV_DATA", str(REPO.parent /
                                                                            "shared" / "data")))
    args = p.parse_args()
    data_root = str(Path(args.data_root).resolve())
    configs = sample_configs(args.trials, args.seed)
    direct_s = run_direct(configs, data_root, args.cpus_per_trial, args.round0_cache)
    tune_s, parts = run_tune(configs, data_root, args)
    n = len(configs)
    print(json.dumps({
        "trials": n, "rounds": sum(c["rounds/count"] + 1 for c in configs),
        "max_concurrent": args.max_concurrent, "cpus_per_trial": args.cpus_per_trial,
        "round0_cache": args.round0_cache,
        "direct_s": round(direct_s, 2), "tune_s": round(tune_s, 2),
        "direct_per_trial_s": round(direct_s / n, 2), "tune_per_trial_s": round(tune_s / n, 2),
        "overhead_s": round(tune_s - direct_s, 2), "ratio": round(tune_s / direct_s, 2),
        **parts,
    }, indent=2))


if __name__ == "__main__":
    main()
