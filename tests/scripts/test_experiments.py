"""scripts/experiments.py: the ablation's cumulative variants, and the shared (or re-evaluated)
round 0 that lets its runs skip recomputing round 0 without changing a number."""

from __future__ import annotations

from pathlib import Path

import pytest

from netinv.config import Config
from netinv.pipeline import run_rounds
from netinv.presets import get_preset
from netinv.state import RoundState
from tests.helpers.scripts import load

experiments = load("experiments")

TINY = {
    "data/train_limit": 1000, "data/test_limit": 200, "data/id_val_size": 200,
    "data/ood": "fashionmnist", "classifier/width": 8, "classifier/batch_size": 32,
    "inversion/width": 8, "inversion/steps": 5, "inversion/samples_per_round": 100,
    "garbage/noise_count": 100, "rounds/count": 1, "rounds/device": "cpu",
}


def test_configs_compare_as_today_s_config_reads_them() -> None:
    ran = {**Config().to_flat(), "inversion/tv": 1, "rounds/seed": 1}
    del ran["rounds/layer_stats_first"]  # a key added after the run: it ran the default
    ran["classifier/retired_key"] = 7  # a key Config has dropped since
    assert experiments.changed_keys(ran, {"inversion/tv": 1.0, "rounds/seed": 1}) == []
    # where the data lay, the device and the scoring chunk size do not make another config
    free = {"data/root": "/elsewhere", "rounds/device": "cuda", "rounds/eval_batch_size": 64}
    assert experiments.changed_keys({**ran, **free}, {"inversion/tv": "1", "rounds/seed": 1}
                                    ) == []
    assert set(experiments.changed_keys(ran, {"rounds/seed": 2, "rounds/layer_stats_first": 1})
               ) == {"inversion/tv", "rounds/layer_stats_first", "rounds/seed"}
    assert experiments.same_value(("a", "b"), ["a", "b"])
    assert not experiments.same_value(None, 0)


def test_preset_plan_names_every_run_of_the_results_page() -> None:
    plan = experiments.preset_plan("mnist")
    preset = get_preset("mnist")
    assert sorted(plan) == sorted([f"{kind}-s{s}" for kind in ("preset", "nclass", "control")
                                   for s in experiments.SEEDS] + ["paper3-s0"])
    assert plan["control-s2"][0] == {**preset, "rounds/seed": 2, "garbage/policy": "none"}
    assert plan["nclass-s1"][1]["plain"] and plan["preset-s0"][1]["grids"]


def test_ablation_variants_add_one_lever_each() -> None:
    base = experiments.ABLATION_BASE["fashionmnist"]
    assert experiments.ablation_overrides("fashionmnist", "paper") == base
    assert experiments.ablation_overrides("fashionmnist", "control") == {
        **base, "garbage/policy": "none"}
    names = list(experiments.ABLATION)
    for before, after in zip(names[1:], names[2:]):
        a = experiments.ablation_overrides("fashionmnist", before)
        b = experiments.ablation_overrides("fashionmnist", after)
        assert {k: v for k, v in b.items() if a.get(k) != v} == experiments.ABLATION[after][1]
    assert set(experiments.ABLATION_ORDER) == set(experiments.ABLATION)
    # the shipped preset is the ablation's last variant (chosen on validation)
    assert experiments.ablation_overrides("fashionmnist", "ortho") == get_preset("fashionmnist")


def test_a_run_from_the_shared_round_0_equals_the_full_run(data_root: Path) -> None:
    base = {**TINY, "data/root": str(data_root)}
    control = {**base, "garbage/policy": "none"}
    prior = {**base, "inversion/tv": 1.0, "garbage/policy": "mix"}
    states: list[RoundState] = []
    run_rounds(Config.from_flat(control), on_round=lambda rec, st: states.append(st))
    shared = experiments.shared_round0(states[0], prior)
    resumed = run_rounds(Config.from_flat(prior), state=shared).records
    full = run_rounds(Config.from_flat(prior)).records
    for a, b in zip(full, resumed):
        assert a["id_test_accuracy"] == b["id_test_accuracy"]
        assert [row["auroc"] for row in a["ood"]] == [row["auroc"] for row in b["ood"]]
    assert full[1]["inversion_tv"] == resumed[1]["inversion_tv"]


def test_round_0_is_not_shared_across_settings_it_reads(data_root: Path) -> None:
    states: list[RoundState] = []
    run_rounds(Config.from_flat({**TINY, "data/root": str(data_root), "rounds/count": 1,
                                 "garbage/policy": "none"}),
               on_round=lambda rec, st: states.append(st))
    with pytest.raises(ValueError, match=r"changed=\['classifier/epochs'\]"):
        experiments.shared_round0(states[0], {**TINY, "data/root": str(data_root),
                                              "classifier/epochs": 2})


TINY_RGB = {**TINY, "data/id": "cifar10", "data/ood": "tinyimagenet", "classifier/arch": "resnet",
            "classifier/flip": True, "rounds/fitted_scores": True, "inversion/feature_stats": 1.0,
            "inversion/feature_stats_target": "id"}  # as the cifar10 preset


def test_a_run_from_a_re_evaluated_round_0_equals_the_full_run(data_root: Path) -> None:
    """Round 0 trained without test-time translation (by the control run, as the round-0 cache
    may hold it), evaluated again with it, then continued: every round's record equals that of
    the run with it from the start."""
    without = {**TINY_RGB, "data/root": str(data_root)}
    with_tta = {**without, "classifier/tta_shift": 1}
    states: list[RoundState] = []
    run_rounds(Config.from_flat({**without, "garbage/policy": "none"}),
               on_round=lambda rec, st: states.append(st))
    resumed = run_rounds(Config.from_flat(with_tta),
                         state=experiments.reevaluated(states[0], with_tta)).records
    full = run_rounds(Config.from_flat(with_tta)).records
    assert states[0].records[0]["ood"] != full[0]["ood"]  # the translated views count
    assert resumed[0]["reevaluated"] and "reevaluated" not in full[0]
    for a, b in zip(full, resumed, strict=True):
        assert a["id_test_accuracy"] == b["id_test_accuracy"]
        assert a["classifier_loss"] == b["classifier_loss"]
        assert ([(r["score"], r["split"], r["auroc"]) for r in a["ood"]]
                == [(r["score"], r["split"], r["auroc"]) for r in b["ood"]])


def test_only_evaluation_settings_may_change_in_a_re_evaluation(data_root: Path) -> None:
    states: list[RoundState] = []
    base = {**TINY, "data/root": str(data_root), "garbage/policy": "none"}
    run_rounds(Config.from_flat(base), on_round=lambda rec, st: states.append(st))
    with pytest.raises(ValueError, match=r"may change only classifier/tta_shift of what it "
                                         r"reads.*changed=\['classifier/width'\]"):
        experiments.reevaluated(states[0], {**base, "classifier/width": 12})


def test_shrink_png_keeps_colour_and_makes_grey_content_8_bit(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = np.repeat(rng.integers(0, 256, (20, 20, 1), dtype=np.uint8), 3, axis=2)
    colour = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    for name, pixels in (("grey", grey), ("colour", colour)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        experiments.shrink_png(tmp_path / f"{name}.png")
    assert Image.open(tmp_path / "grey.png").mode == "L"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grey.png")), grey[..., 0])
    assert Image.open(tmp_path / "colour.png").mode == "RGB"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "colour.png")), colour)
