"""study.mlflow_tracking: the batched MLflow callback stores what Ray's own callback stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow  # the [mlflow] extra, which the test install includes
import pytest
from ray.air.integrations.mlflow import MLflowLoggerCallback

from study.mlflow_tracking import StudyMLflowCallback, as_metrics


class Trial:
    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name, self.config = name, config

    def __str__(self) -> str:
        return self.name


def _log(callback_cls: type, folder: Path, reports: list[dict[str, Any]]) -> list[tuple]:
    """Log one trial's reports with ``callback_cls``; return (name, tags, params, metric
    histories) of every run in the store."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    callback = callback_cls(tracking_uri=uri, experiment_name="e", tags={"study": "s"},
                            save_artifact=False)
    callback.setup()
    trial = Trial("trial_a", {"classifier": {"width": 16, "lr": 0.001}, "seed": 3,
                              "ood": ["mnist", "fashionmnist"]})
    callback.log_trial_start(trial)
    for i, result in enumerate(reports):
        callback.log_trial_result(i + 1, trial, result)
    callback.log_trial_end(trial)
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    return [(run.info.run_name, run.info.status,
             {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
             run.data.params,
             {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id,
                                                                                 key))
              for key in run.data.metrics})
            for run in runs]


@pytest.fixture(autouse=True)
def _keep_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The callbacks' setup sets MLflow's global tracking URI (and MLFLOW_TRACKING_URI) to the
    test's store; later tests and the processes they start must not inherit it."""
    before = mlflow.get_tracking_uri()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(before)


def test_batched_callback_stores_what_rays_callback_stores(tmp_path: Path) -> None:
    # more metrics than one MLflow request holds (1,000), nested dicts, values that are not
    # numbers
    many = {f"ood/val/msp/set{i}/auroc": i / 2000 for i in range(1005)}
    reports = [{"objective": 0.5 + r / 10, "nested": {"a": r, "b": "text"}, "note": None,
                "training_iteration": r + 1, **many} for r in range(3)]
    (tmp_path / "ray").mkdir()
    (tmp_path / "ours").mkdir()
    theirs = _log(MLflowLoggerCallback, tmp_path / "ray", reports)
    ours = _log(StudyMLflowCallback, tmp_path / "ours", reports)
    assert len(ours) == 1 and ours[0][0] == "trial_a"
    assert ours[0][2] == {"study": "s", "trial_name": "trial_a"}
    assert ours[0][3]["classifier/width"] == "16"
    assert ours[0][4]["objective"] == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert len(ours[0][4]) == len(many) + 3  # objective, nested/a, training_iteration
    assert ours == theirs


def test_as_metrics_flattens_and_keeps_numbers_only() -> None:
    assert as_metrics({"a": {"b": 1, "c": "x"}, "d": 2.5, "e": None, "f": True}) == {
        "a/b": 1.0, "d": 2.5, "f": 1.0}
