"""netinv.records: the record's field list, strict-JSON records, the mean over OOD sets."""

from __future__ import annotations

import json
import math

import pytest

from netinv.records import OOD_ROWS, RECORD_FIELDS, flat_ood_metrics, json_safe, mean_metric


def test_every_field_has_a_type_and_a_description() -> None:
    assert list(RECORD_FIELDS)[0] == "round" and OOD_ROWS not in RECORD_FIELDS
    for name, field in RECORD_FIELDS.items():
        assert field.type in (int, float, bool), name
        assert field.description.strip(), name


def test_json_safe_replaces_non_finite_floats_everywhere() -> None:
    record = {"round": 1, "loss": float("nan"), "ood": [{"auroc": float("inf"), "x": 0.5}],
              "nested": {"v": [float("-inf"), 2.0]}}
    safe = json_safe(record)
    assert safe == {"round": 1, "loss": None, "ood": [{"auroc": None, "x": 0.5}],
                    "nested": {"v": [None, 2.0]}}
    json.dumps(safe, allow_nan=False)  # strict JSON
    assert math.isnan(record["loss"])  # the input is left as it was


def test_mean_metric_on_a_hand_built_record() -> None:
    rows = [{"score": "ue", "split": "val", "auroc": 0.9}, {"score": "ue", "split": "val",
            "auroc": 0.7}, {"score": "ue", "split": "test", "auroc": 0.1},
            {"score": "msp", "split": "val", "auroc": 0.2}]
    record = {OOD_ROWS: rows}
    assert mean_metric(record, score="ue", metric="auroc", split="val") == pytest.approx(0.8)
    assert mean_metric(record, score="msp", metric="auroc", split="val") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="score='energy', split='val'"):
        mean_metric(record, score="energy", metric="auroc", split="val")


def test_flat_ood_metrics_names_every_row_and_the_means() -> None:
    rows = [{"ood_set": "cifar10", "split": "val", "score": "ue", "auroc": 0.9, "fpr95": 0.2,
             "garbage_share": 0.5},
            {"ood_set": "folder:/data/x", "split": "val", "score": "ue", "auroc": 0.7,
             "fpr95": 0.4, "garbage_share": 0.1}]
    flat = flat_ood_metrics({OOD_ROWS: rows})
    assert flat == {
        "ood/val/ue/cifar10/auroc": 0.9, "ood/val/ue/cifar10/fpr95": 0.2,
        "ood/val/ue/cifar10/garbage_share": 0.5,
        "ood/val/ue/folder__data_x/auroc": 0.7, "ood/val/ue/folder__data_x/fpr95": 0.4,
        "ood/val/ue/folder__data_x/garbage_share": 0.1,
        "ood/val/ue/mean/auroc": pytest.approx(0.8), "ood/val/ue/mean/fpr95": pytest.approx(0.3),
    }
