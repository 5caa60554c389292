"""scripts/ablation_page.py: the ablation section's numbers and verdicts on hand-built records."""

from __future__ import annotations

from netinv.scores import SCORES
from tests.helpers.scripts import load

ablation_page = load("ablation_page")
OOD = ("mnist", "cifar10", "tinyimagenet")


def _record(rnd: int, seed: int, mnist: float, acc: float = 0.9) -> dict:
    rows = [{"ood_set": o, "score": "p_garbage", "split": "test",
             "auroc": mnist if o == "mnist" else 1.0} for o in OOD]
    rows += [{"ood_set": o, "score": score, "split": "val", "fpr95": 0.5,
              "auroc": mnist if score == "p_garbage" and o == "mnist" else 0.5}
             for o in OOD for score in SCORES]  # val: only p_garbage on MNIST separates
    return {"round": rnd, "config": {"rounds/seed": seed}, "id_test_accuracy": acc, "ood": rows,
            "id_val_accuracy": acc,
            "garbage_added": 0 if rnd == 0 else 100, "inverted_frechet": None if rnd == 0
            else 10.0 * (seed + 1), "inverted_diversity_features": None,
            "inverted_diversity_pixels": None}


def _runs() -> dict:
    # round 0: 0.80 / 0.85; control ends at 0.82 / 0.90; paper at 0.90 / 0.86
    runs = {}
    for seed, r0, control, paper in ((0, 0.80, 0.82, 0.90), (1, 0.85, 0.90, 0.86)):
        runs[f"ablation-control-s{seed}"] = [_record(0, seed, r0), _record(1, seed, control)]
        runs[f"ablation-paper-s{seed}"] = [_record(0, seed, r0), _record(1, seed, paper)]
    return runs


def test_rows_say_whether_every_seed_beats_round_0_and_the_control() -> None:
    lines = ablation_page.ablation_section("fashionmnist", _runs())
    paper = next(line for line in lines if line.startswith("| paper"))
    cells = [c.strip() for c in paper.strip("|").split("|")]
    assert cells[1] == "0.8800 ± 0.0283"  # MNIST AUROC over the 2 seeds
    assert cells[2] == "0.9000, 0.8600"
    assert cells[5] == "yes (2/2)"  # above round 0 (0.80, 0.85) on both seeds
    assert cells[6] == "no (1/2)"  # above the control (0.82, 0.90) on seed 0 only
    control = next(line for line in lines if line.startswith("| control"))
    assert control.rstrip().endswith("| yes (2/2) | – |")


def test_levers_measures_and_goal_are_computed() -> None:
    text = "\n".join(ablation_page.ablation_section("fashionmnist", _runs()))
    assert "paper vs control: MNIST +0.0200 (2 seeds)" in text  # (0.08 - 0.04) / 2
    assert "| paper | 1 | 100.00 | – | – | 15.00 |" in text  # Fréchet mean of 10 and 20
    assert "no variant has three seeds yet" in text
    assert ("*control* (2 seeds): `garbage/policy=none`; *paper* (2 seeds): the former "
            "preset." in text)
    assert "Not run: fstats, diversity, policy, arch" in text


def test_no_ablation_runs_no_section() -> None:
    assert ablation_page.ablation_section("fashionmnist", {"preset-s0": []}) == []


def test_the_validation_winner_follows_the_preset_rule_on_seed_means() -> None:
    runs = _runs()
    runs["ablation-control-s2"] = [_record(0, 2, 0.80), _record(1, 2, 0.95)]
    runs["ablation-paper-s2"] = [_record(0, 2, 0.80), _record(1, 2, 0.81)]
    text = "\n".join(ablation_page.ablation_section("fashionmnist", runs))
    # val MNIST AUROC seed means: control 0.89 > paper 0.8567; with 0.5 on the other two sets
    # the OOD means are (0.89 + 1) / 3 and (0.8567 + 1) / 3
    assert "*control* with `p_garbage` ranks first (val mean AUROC 0.6300" in text
    assert "the former preset's best (*paper*, `p_garbage`) has 0.6189" in text


def test_a_longer_variant_is_compared_with_the_control_after_as_many_rounds() -> None:
    runs = _runs()
    # the preset's control continues to round 2 (seed 0: 0.95; seed 1: 0.70); the variant
    # "rounds" runs 2 rounds: 0.93 / 0.92, below seed 0's 2-round control, above seed 1's
    runs["control-s0"] = [_record(0, 0, 0.80), _record(1, 0, 0.82), _record(2, 0, 0.95)]
    runs["control-s1"] = [_record(0, 1, 0.85), _record(1, 1, 0.90), _record(2, 1, 0.70)]
    for seed, value in ((0, 0.93), (1, 0.92)):
        runs[f"ablation-rounds-s{seed}"] = [_record(0, seed, 0.8), _record(1, seed, 0.9),
                                            _record(2, seed, value)]
    assert ablation_page.controls_by_round(runs)[1][1]["round"] == 1
    lines = ablation_page.ablation_section("fashionmnist", runs)
    row = next(line for line in lines if line.startswith("| rounds"))
    assert row.rstrip().endswith("| yes (2/2) | no (1/2) |")  # vs round 2 of the control
    paper = next(line for line in lines if line.startswith("| paper"))
    assert paper.rstrip().endswith("| yes (2/2) | no (1/2) |")  # still vs round 1 (0.82, 0.90)
