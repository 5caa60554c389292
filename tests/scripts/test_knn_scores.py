"""scripts/knn_scores.py: the KNN score on a shipped detector, and its section of the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.scripts import load

knn_scores = load("knn_scores")
page = load("page")


def test_mnist_detector_scored_by_knn_and_its_logit_scores(data_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn_scores, "BANK_SIZE", 2000)
    monkeypatch.setitem(knn_scores.OOD_SETS, "mnist", ["fashionmnist"])
    result = knn_scores.evaluate("mnist", str(data_root))
    assert result["bank_size"] == 2000 and result["score"] == "p_garbage"
    row = result["ood"]["fashionmnist"]
    assert set(row) == {"images", "msp", "energy", "p_garbage", "knn-1", "knn-5", "knn-10",
                        "knn-50"}
    for name, metrics in row.items():
        if name != "images":  # the shipped MNIST detector separates FashionMNIST well
            assert metrics["auroc"] > 0.95 and 0 <= metrics["fpr95"] < 0.3, (name, metrics)
    # the page renders the file: one row per score, the set's label in the header
    monkeypatch.setattr(page, "RESULTS", tmp_path)
    (tmp_path / "knn.json").write_text(json.dumps({"mnist": {**result, "total_s": 1.0}}))
    lines = page.knn_section("mnist")
    assert lines[0] == "### The KNN score on the shipped detector"
    table = [line for line in lines if line.startswith("| ")]
    assert "FashionMNIST AUROC / FPR95" in table[0] and len(table) == 1 + 7
    assert any(line.startswith("| KNN, k = 10 | ") for line in table)
    assert page.knn_section("cifar10") == []  # not in the file: no section
