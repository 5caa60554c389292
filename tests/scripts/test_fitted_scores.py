"""scripts/fitted_scores.py: the scores fitted on ID training images (knn, layer_stats, fused)
on a shipped detector, and its section of the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netinv.data import load_split
from netinv.detector import Detector
from netinv.presets import preset_detector_path
from tests.helpers.scripts import load

fitted_scores = load("fitted_scores")
page = load("page")


def test_mnist_detector_scored_by_fitted_and_logit_scores(data_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fitted_scores, "BANK_SIZE", 2000)
    monkeypatch.setitem(fitted_scores.OOD_SETS, "mnist", ["fashionmnist"])
    result = fitted_scores.evaluate("mnist", str(data_root))
    assert result["bank_size"] == 2000 and result["score"] == "p_garbage"
    row = result["ood"]["fashionmnist"]
    assert set(row) == {"images", "msp", "energy", "p_garbage", "knn-1", "knn-5", "knn-10",
                        "knn-50", "layer_stats", "fused"}
    assert result["fused"] == ["p_garbage", "knn", "layer_stats"] and result["layers"] == 3
    assert result["accuracy"] > 0.98  # the shipped MNIST detector, all 10,000 test images
    for name, metrics in row.items():
        if name != "images":  # the shipped MNIST detector separates FashionMNIST well
            assert metrics["auroc"] > 0.95 and 0 <= metrics["fpr95"] < 0.3, (name, metrics)
    # the page renders the file: one row per score, the set's label in the header
    monkeypatch.setattr(page, "RESULTS", tmp_path)
    (tmp_path / "fitted_scores.json").write_text(json.dumps({"mnist": {**result, "total_s": 1.0}}))
    lines = page.fitted_section("mnist")
    assert lines[0] == "### Scores fitted on ID training images: KNN, layer statistics, fused"
    table = [line for line in lines if line.startswith("| ")]
    assert "FashionMNIST AUROC / FPR95" in table[0] and len(table) == 1 + 9
    assert any(line.startswith("| KNN, k = 10 | ") for line in table)
    assert page.fitted_section("cifar10") == []  # not in the file: no section
    # a plain-baseline entry adds its own table after the detector's
    (tmp_path / "fitted_scores.json").write_text(json.dumps(
        {"mnist": {**result, "total_s": 1.0, "plain": {**result, "total_s": 2.0}}}))
    lines = page.fitted_section("mnist")
    assert sum(line.startswith("| KNN, k = 10 | ") for line in lines) == 2
    assert any("plain n-class baseline" in line for line in lines)
    assert "--plain mnist" in lines[2]
    # another detector file adds a table named by its label, and its flag to the command
    (tmp_path / "fitted_scores.json").write_text(json.dumps(
        {"mnist": {**result, "total_s": 1.0,
                   "others": {"width 32": {**result, "total_s": 2.0, "file": "d.pt"}}}}))
    lines = page.fitted_section("mnist")
    assert any(line.startswith("The same scores on **width 32** (`d.pt`") for line in lines)
    assert "--detector mnist:width 32=d.pt" in lines[2]


def test_plain_arm_trains_the_presets_n_class_baseline(data_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = {"data/id": "mnist", "data/train_limit": 2000, "data/test_limit": 500,
            "data/id_val_size": 500, "classifier/width": 8, "classifier/epochs": 1}
    monkeypatch.setattr(fitted_scores, "get_preset", lambda name: dict(tiny))
    monkeypatch.setattr(fitted_scores, "BANK_SIZE", 1000)
    monkeypatch.setitem(fitted_scores.OOD_SETS, "mnist", ["cifar10"])
    result = fitted_scores.evaluate("mnist", str(data_root), plain=True)
    assert result["score"] == "msp" and result["bank_size"] == 1000
    row = result["ood"]["cifar10"]
    assert "p_garbage" not in row  # the plain network has no garbage class to score with
    assert row["knn-10"]["auroc"] > 0.75  # digits vs photos, well above chance after one epoch
    assert row["fused"]["auroc"] > 0.75 and row["layer_stats"]["auroc"] > 0.75


def test_plain_arm_scores_the_baseline_that_results_run_saved(data_root: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    tiny = {"data/id": "mnist", "data/train_limit": 2000, "data/test_limit": 500,
            "data/id_val_size": 500, "classifier/width": 8, "classifier/epochs": 1}
    monkeypatch.setattr(fitted_scores, "get_preset", lambda name: dict(tiny))
    monkeypatch.setattr(fitted_scores, "BANK_SIZE", 1000)
    monkeypatch.setitem(fitted_scores.OOD_SETS, "mnist", ["fashionmnist"])
    saved = tmp_path / "nclass-s0.pt"
    experiments = load("experiments")
    experiments.run_one("mnist", "nclass-s0", {**tiny, "rounds/seed": 0}, data_root=str(data_root),
                        plain=True, export=saved, folder=tmp_path, roc=False)
    loaded = fitted_scores.evaluate("mnist", str(data_root), plain=True, path=str(saved))
    trained = fitted_scores.evaluate("mnist", str(data_root), plain=True)
    assert loaded["score"] == "msp" and loaded["accuracy"] == trained["accuracy"]
    assert loaded["ood"] == trained["ood"]  # the saved network is the one --plain ID trains
    # the page names the file and puts it in the command
    monkeypatch.setattr(page, "RESULTS", tmp_path)
    (tmp_path / "fitted_scores.json").write_text(json.dumps(
        {"mnist": {**loaded, "total_s": 1.0, "plain": {**loaded, "file": "p.pt"}}}))
    lines = page.fitted_section("mnist")
    assert "--plain mnist=p.pt" in lines[2]
    assert any("saved by `scripts/results.py run` as `nclass-s0` (`p.pt`)" in line
               for line in lines)


def test_a_detector_file_keeps_the_first_convolution_it_was_fitted_from(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fitted_scores, "BANK_SIZE", 1000)
    monkeypatch.setitem(fitted_scores.OOD_SETS, "mnist", ["fashionmnist"])
    detector = Detector.load(preset_detector_path("mnist"))
    train = load_split("mnist", "train", root=str(data_root), download=False)
    detector.fit(train.images[:2000], layer_stats_first=2).save(tmp_path / "f2.pt")
    result = fitted_scores.evaluate("mnist", str(data_root), path=str(tmp_path / "f2.pt"))
    assert result["layer_first"] == 2 and result["layers"] == 1  # refitted as the file has it
    monkeypatch.setattr(page, "RESULTS", tmp_path)
    (tmp_path / "fitted_scores.json").write_text(json.dumps({"mnist": {**result,
                                                                       "total_s": 1.0}}))
    assert "each of the 1 convolutions from convolution 2 on" in page.fitted_section("mnist")[2]


def test_plain_flag_names_a_bad_value_before_any_work(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fitted_scores, "evaluate", lambda *a, **k: pytest.fail("work started"))
    for bad in (f"mnist={tmp_path / 'missing.pt'}", "svhn"):
        with pytest.raises(SystemExit) as exit_info:
            fitted_scores.main(["--data-root", str(tmp_path), "--plain", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--plain must be ID or ID=PATH" in err and repr(bad) in err
