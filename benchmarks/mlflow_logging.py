"""What ``--mlflow`` costs the Tune driver per report: Ray's callback against ours.

    python benchmarks/mlflow_logging.py --reports 20 --ood-sets 3

Both callbacks log the same trials to fresh SQLite stores (``<tmp>/mlflow.db``, the default of
``--mlflow``): one run per trial, its config as params, then ``--reports`` reports shaped like a
round's (the study's metrics and every OOD set's, :func:`netinv.records.flat_ood_metrics`).
Ray's ``MLflowLoggerCallback`` writes each metric in its own call; ``StudyMLflowCallback``
writes one batch. Prints one JSON object: seconds per report and per trial start for each, and
whether the two stores hold the same metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class FakeTrial:
    """What the callbacks read of a Tune trial: its name and config (hashable by identity)."""

    def __init__(self, name: str, config: dict) -> None:
        self.name, self.config = name, config

    def __str__(self) -> str:
        return self.name


def report(round_index: int, ood_sets: int) -> dict:
    """A round's report: the study's scalars and every OOD set's metrics."""
    from netinv.records import OOD_ROWS, flat_ood_metrics
    from netinv.scores import SCORES

    rows = [{"ood_set": f"set{k}", "split": split, "score": score, "auroc": 0.9 + 0.001 * k,
             "aupr_in": 0.9, "aupr_out": 0.8, "fpr95": 0.2, "fpr95_ood_positive": 0.3,
             "garbage_share": 0.1}
            for k in range(ood_sets) for split in ("val", "test") for score in SCORES]
    return {"objective": 0.9, "id_val_accuracy": 0.98, "round": round_index,
            "rounds_total": 3, "garbage_size": 2000, "best_objective": 0.9,
            "training_iteration": round_index + 1, "trial_id": "t", "date": "today",
            **flat_ood_metrics({OOD_ROWS: rows})}


def run(callback_cls: type, folder: Path, trials: int, reports: int, ood_sets: int) -> dict:
    from netinv.config import Config

    callback = callback_cls(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                            experiment_name="bench", save_artifact=False)
    callback.setup()
    config = Config.from_flat({}).to_flat()
    start_s, report_s = 0.0, 0.0
    for t in range(trials):
        trial = FakeTrial(f"trial_{t}", config)
        t0 = time.perf_counter()
        callback.log_trial_start(trial)
        start_s += time.perf_counter() - t0
        for r in range(reports):
            t0 = time.perf_counter()
            callback.log_trial_result(r + 1, trial, report(r, ood_sets))
            report_s += time.perf_counter() - t0
        callback.log_trial_end(trial)
    from study.mlflow_tracking import as_metrics

    return {"s_per_trial_start": start_s / trials, "s_per_report": report_s / (trials * reports),
            "metrics_per_report": len(as_metrics(report(0, ood_sets)))}


def stored(folder: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    return sorted((r.info.run_name, sorted(r.data.metrics.items()), sorted(r.data.params.items()))
                  for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--ood-sets", type=int, default=3)
    args = parser.parse_args()
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from study.mlflow_tracking import StudyMLflowCallback

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in (("ray", MLflowLoggerCallback), ("batched", StudyMLflowCallback)):
            folder = Path(tmp) / name
            folder.mkdir()
            out[name] = run(cls, folder, args.trials, args.reports, args.ood_sets)
        out["same_metrics_and_params"] = stored(Path(tmp) / "ray") == stored(Path(tmp) / "batched")
    out["speedup_per_report"] = round(out["ray"]["s_per_report"]
                                      / out["batched"]["s_per_report"], 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
