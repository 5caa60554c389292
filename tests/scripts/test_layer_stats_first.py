"""scripts/layer_stats_first.py: the layer statistics' first convolution chosen on validation
splits for a shipped detector, and its section of the page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netinv.presets import get_preset
from tests.helpers.scripts import load

layer_stats_first = load("layer_stats_first")
page = load("page")


def test_every_first_convolution_is_scored_and_validation_chooses(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = {**get_preset("mnist"), "data/ood": ["fashionmnist"], "data/train_limit": 3000,
             "data/test_limit": 1000, "data/id_val_size": 1000, "rounds/fitted_scores": True}
    monkeypatch.setattr(layer_stats_first, "get_preset", lambda name: dict(small))
    result = layer_stats_first.evaluate("mnist", str(data_root))  # the shipped MNIST CNN
    assert list(result["firsts"]) == ["0", "1", "2"]  # its 3 convolutions
    assert result["ood"] == ["fashionmnist"] and result["shipped_first"] == 0

    def fused(first: str, split: str) -> float:
        return result["firsts"][first][split]["fashionmnist"]["fused"]["auroc"]

    # the choice is the best validation mean, whatever the test numbers say
    assert fused(str(result["chosen"]), "val") == max(fused(f, "val") for f in "012")
    for first in "012":
        for split in ("val", "test"):
            for score in ("layer_stats", "fused"):
                metrics = result["firsts"][first][split]["fashionmnist"][score]
                assert 0.5 < metrics["auroc"] <= 1.0 and 0 <= metrics["fpr95"] <= 1
    # and every refit is also scored on the offline sets no choice saw (digits are ID here)
    assert result["unseen"] == ["letters", "photo-crops", "negated-id", "uniform-noise", "blobs"]
    for first in "012":
        for name in result["unseen"]:
            assert 0 <= result["firsts"][first]["unseen"][name]["fused"]["auroc"] <= 1
    # skipping convolutions changes what the layer statistics see
    layer_aurocs = {result["firsts"][f]["test"]["fashionmnist"]["layer_stats"]["auroc"]
                    for f in "012"}
    assert len(layer_aurocs) == 3
    # the page renders one row per first convolution, the chosen one marked
    monkeypatch.setattr(page, "RESULTS", tmp_path)
    (tmp_path / "layer_stats_first.json").write_text(json.dumps({"mnist": result}))
    lines = page.layer_first_section("mnist")
    assert lines[0].startswith("### Which convolutions the layer statistics use")
    rows = [line for line in lines if line.startswith("| ") and "AUROC" not in line]
    assert len(rows) == 3 + 3 and sum("(chosen)" in row for row in rows) == 2  # val/test, unseen
    assert lines[lines.index(rows[2]) + 4] == "| first convolution f | letters | photo-crops | " \
                                              "negated-id | uniform-noise | blobs | mean AUROC |"
    assert rows[result["chosen"]].startswith(f"| **{result['chosen']}** (chosen) | "
                                             f"{fused(str(result['chosen']), 'val'):.4f} |")
    assert f"| {fused('0', 'test'):.4f} |" in rows[0]  # one OOD set: its AUROC is the mean
    assert page.layer_first_section("cifar10") == []  # not in the file: no section


def test_a_preset_without_fitted_scores_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        layer_stats_first.main(["mnist", "--data-root", "unused"])
    assert "has no fitted scores (rounds/fitted_scores)" in capsys.readouterr().err


def _entry(val: float, test: float) -> dict:
    return {split: {"tinyimagenet": {"fused": {"auroc": auroc}}}
            for split, auroc in (("val", val), ("test", test))}


def test_the_choice_looks_at_validation_only_and_a_tie_goes_to_the_smaller_first() -> None:
    # f = 1 is best on val, f = 0 and 2 on test: the test split must not sway the choice
    assert layer_stats_first.choose({"0": _entry(0.90, 0.99), "1": _entry(0.95, 0.80),
                                     "2": _entry(0.93, 0.99)}) == 1
    assert layer_stats_first.choose({"0": _entry(0.90, 0.50), "1": _entry(0.95, 0.50),
                                     "2": _entry(0.95, 0.99)}) == 1


def test_main_keeps_the_other_id_sets_entries(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "layer_stats_first.json"
    out.write_text(json.dumps({"mnist": {"chosen": 0}}))
    monkeypatch.setattr(layer_stats_first, "OUT", out)
    # the evaluation itself is the test above; here only what main does with its result
    monkeypatch.setattr(layer_stats_first, "evaluate", lambda id_set, root: {"chosen": 3})
    assert layer_stats_first.main(["cifar10", "--data-root", str(tmp_path)]) == 0
    assert json.loads(out.read_text()) == {"mnist": {"chosen": 0}, "cifar10": {"chosen": 3}}
