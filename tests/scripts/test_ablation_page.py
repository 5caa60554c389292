"""scripts/ablation_page.py: the ablation section's numbers and verdicts on hand-built records."""

from __future__ import annotations

from tests.helpers.scripts import load

ablation_page = load("ablation_page")
OOD = ("mnist", "cifar10", "tinyimagenet")


def _record(rnd: int, seed: int, mnist: float, acc: float = 0.9) -> dict:
    rows = [{"ood_set": o, "score": "p_garbage", "split": "test",
             "auroc": mnist if o == "mnist" else 1.0} for o in OOD]
    return {"round": rnd, "config": {"rounds/seed": seed}, "id_test_accuracy": acc, "ood": rows,
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


def test_no_ablation_runs_no_section() -> None:
    assert ablation_page.ablation_section("fashionmnist", {"preset-s0": []}) == []
