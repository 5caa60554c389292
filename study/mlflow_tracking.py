"""Ray Tune's MLflow callback, writing each report in one batch.

Ray's ``MLflowLoggerCallback`` logs a report's metrics and a trial's params one
``log_metric``/``log_param`` call at a time, each its own transaction on the tracking store.
A round reports about 240 metrics (every OOD set's, :func:`netinv.records.flat_ood_metrics`),
so on the default SQLite store that is about 1 s of the Tune driver's loop per report, during
which no trial is scheduled; one ``log_batch`` takes 0.07 s (``benchmarks/mlflow_logging.py``).
:class:`StudyMLflowCallback` keeps Ray's runs, names, tags and values and only batches the
writes.

Kept apart from :mod:`study.watch` because importing Ray's MLflow integration imports
``mlflow`` (an optional extra); Tune pickles the callback by reference to this module. It
reads two of Ray's private names, the callback's ``_trial_runs`` and
``mlflow_util._get_client`` (listed in :mod:`study.ray_compat`).
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric, Param
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION
from ray.tune.utils import flatten_dict


def as_metrics(result: dict[str, Any]) -> dict[str, float]:
    """A report flattened to ``a/b`` keys, with the values that convert to float (as Ray's
    callback logs them; the rest, e.g. strings and None, are skipped)."""
    metrics = {}
    for key, value in flatten_dict(result, delimiter="/").items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


class StudyMLflowCallback(MLflowLoggerCallback):
    """``MLflowLoggerCallback`` whose params and metrics go to the store in batches."""

    def log_trial_start(self, trial: Any) -> None:
        """Start the trial's run (tags ``trial_name`` and the callback's) and log its config."""
        if trial not in self._trial_runs:
            tags = {**self.tags, "trial_name": str(trial)}
            run = self.mlflow_util.start_run(tags=tags, run_name=str(trial))
            self._trial_runs[trial] = run.info.run_id
        if not self.log_params_on_trial_end:
            params = [Param(key, str(value))
                      for key, value in flatten_dict(trial.config, delimiter="/").items()]
            self._log_batch(self._trial_runs[trial], params=params)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        """Log one report's metrics at step = its training iteration."""
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in as_metrics(result).items()]
        self._log_batch(self._trial_runs[trial], metrics=metrics)

    def _log_batch(self, run_id: str, *, metrics: list[Metric] = (),
                   params: list[Param] = ()) -> None:
        # the client splits a batch over MLflow's per-request limits (1,000 metrics, 100
        # params) itself
        self.mlflow_util._get_client().log_batch(run_id, metrics=metrics, params=params)
