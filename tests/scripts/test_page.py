"""scripts/page.py and scripts/study_page.py: statements computed from hand-built records."""

from __future__ import annotations

import json

import pandas as pd

from tests.helpers.scripts import load

page = load("page")
study_page = load("study_page")


def test_shared_settings_are_the_unsearched_common_non_defaults() -> None:
    trials = pd.DataFrame({
        "config_json": [json.dumps({"data/id": "mnist", "classifier/width": 48,
                                    "classifier/epochs": e, "classifier/lr": 1e-3,
                                    "data/root": "/d"}) for e in (2, 3)],
        "searched_params": [json.dumps({"classifier/epochs": e}) for e in (2, 3)]})
    from netinv.config import Config

    lr = Config().to_flat()["classifier/lr"]
    shared = study_page.shared_settings(trials)
    assert shared["data/id"] == "mnist" and shared["classifier/width"] == 48
    assert "classifier/epochs" not in shared and "data/root" not in shared
    assert ("classifier/lr" in shared) == (lr != 1e-3)


def _record(seed: int, round_index: int, aurocs: dict[str, float], acc: float = 0.9) -> dict:
    ood = [{"ood_set": name, "split": split, "score": "p_garbage", "auroc": a,
            "fpr95": 1 - a, "aupr_in": a, "aupr_out": a, "garbage_share": 0.5}
           for name, a in aurocs.items() for split in ("val", "test")]
    return {"round": round_index, "id_test_accuracy": acc, "id_val_accuracy": acc,
            "config": {"rounds/seed": seed}, "ood": ood}


def test_limits_name_the_weakest_set_and_what_the_rounds_did() -> None:
    runs = {f"preset-s{s}": [_record(s, 0, {"mnist": 0.90, "cifar10": 0.999,
                                            "tinyimagenet": 0.999}),
                             _record(s, 1, {"mnist": 0.80 + 0.05 * s, "cifar10": 0.999,
                                            "tinyimagenet": 0.999}, acc=0.95)]
            for s in (0, 1)}
    text = " ".join(page.limits("fashionmnist", runs, "p_garbage"))
    assert "the goal on mean AUROC is missed" in text and "weakest OOD set is MNIST" in text
    assert "by -0.1000, -0.0500 (2 seeds: 0, 1); the seed mean falls by 0.0750" in text
    met = {k: [v[0], _record(0, 1, {"mnist": 0.99, "cifar10": 0.999, "tinyimagenet": 0.999},
                             acc=0.95)] for k, v in runs.items()}
    assert page.limits("fashionmnist", met, "p_garbage") == []


def _checked(config: dict, seeds: list[int]) -> "pd.DataFrame":
    import json

    import pandas as pd

    row = {"trial_id": "t0", "optuna_number": 0, "round": 1, "score": "energy",
           "auroc": 0.8, "fpr95": 0.5, "id_val_accuracy": 0.9, "seeds": seeds,
           "auroc_by_seed": [0.8] * len(seeds), "auroc_mean": 0.8, "fpr95_mean": 0.5,
           "acc_mean": 0.9, "goals_met": 0, "config_json": json.dumps(config)}
    return pd.DataFrame([row])


def test_seed_check_says_when_it_was_not_run_and_when_the_preset_is_not_the_pick() -> None:
    from netinv.presets import get_preset

    preset = get_preset("mnist")
    same = _checked({**preset, "rounds/count": 1}, [0])
    lines = " ".join(study_page.seed_check_lines("mnist", same, same))
    assert "Seed check: not run" in lines and "rests on seed 0 alone" in lines
    assert "is **not** this pick" in lines and "`rounds/count`" in lines  # preset: 3 rounds
    exact = _checked(preset, [0, 1, 2])
    exact["round"] = preset["rounds/count"]
    lines = " ".join(study_page.seed_check_lines("mnist", exact, exact))
    assert "Seed check: not run" not in lines and "re-run with seeds 1, 2" in lines
    assert "ships exactly this as `mnist`" in lines


def test_run_cmd_names_the_thread_count_the_records_ran_with() -> None:
    two = [{"machine": {"torch_threads": 2}}] * 3 + [{"machine": {"torch_threads": 1}}]
    assert study_page.run_cmd("run", "cifar10", two).startswith(
        "`OMP_NUM_THREADS=2 .venv/bin/python scripts/results.py run cifar10 ")
    assert "OMP_NUM_THREADS=1 " in study_page.run_cmd("ablation", "fashionmnist", [])
    assert "OMP_NUM_THREADS=1 " in study_page.run_cmd("run", "mnist", [{"round": 0}])


def test_a_variant_run_of_every_seed_gets_its_row_beside_the_preset() -> None:
    aurocs = {"mnist": 0.9, "fashionmnist": 0.95, "tinyimagenet": 0.85}
    runs = {f"{kind}-s{s}": [_record(s, 0, aurocs), _record(s, 2, aurocs)]
            for kind in ("preset", "notta") for s in (0, 1)}
    labels = [label for label, _, _ in page.method_rows("cifar10", runs)]
    assert ("preset without test-time translation (`classifier/tta_shift` 0), 2 rounds, "
            "p_garbage (2 seeds: 0, 1)") in labels
    assert not any(label.startswith("inversion, paper's") for label in labels)  # not run
    assert labels[-1].startswith("**preset `cifar10`**, 2 rounds")


def test_a_row_whose_seeds_ran_different_configs_says_how() -> None:
    aurocs = {"mnist": 0.9, "fashionmnist": 0.95, "tinyimagenet": 0.85}
    runs = {f"preset-s{s}": [_record(s, 0, aurocs), _record(s, 2, aurocs)] for s in (0, 1, 2)}
    for record in runs["preset-s0"]:  # seed 0 re-run after the preset gained a key
        record["config"]["rounds/layer_stats_first"] = 3
    for record in runs["preset-s2"]:  # chunking alone does not count as a difference
        record["config"]["rounds/eval_batch_size"] = 512
    labels = [label for label, _, _ in page.method_rows("cifar10", runs)]
    # the older records lack the key: they ran with the default, 0
    assert labels[-1].endswith("; seeds differ in `rounds/layer_stats_first` (s0 3, s1 0, s2 0)")
    runs["preset-s0"] = [_record(0, 0, aurocs), _record(0, 2, aurocs)]
    assert "differ" not in " ".join(label for label, _, _ in page.method_rows("cifar10", runs))
    # values print as JSON, and a key only a later seed's record has is not missed
    runs["preset-s1"][-1]["config"]["inversion/feature_stats_target"] = "id"
    assert page.method_rows("cifar10", runs)[-1][0].endswith(
        "; seeds differ in `inversion/feature_stats_target` (s0 running, s1 id, s2 running)")


def test_a_row_whose_runs_are_not_today_s_config_says_so_even_when_its_seeds_agree() -> None:
    aurocs = {"mnist": 0.9, "fashionmnist": 0.95, "tinyimagenet": 0.85}
    runs = {f"preset-s{s}": [{**_record(s, r, aurocs), "run": f"preset-s{s}"} for r in (0, 2)]
            for s in (0, 1, 2)}
    today = {f"preset-s{s}": ({"rounds/seed": s, "rounds/layer_stats_first": 3}, {})
             for s in (0, 1, 2)}
    labels = [label for label, _, _ in page.method_rows("cifar10", runs, today)]
    # round 0 (noise only) and the last round: all three seeds ran f = 0, today's plan has 3
    assert all(label.endswith("; not today's config: `rounds/layer_stats_first` (s0 0, s1 0, "
                              "s2 0; today 3)") for label in labels)
    for records in runs.values():
        for record in records:
            record["config"]["rounds/layer_stats_first"] = 3
    labels = [label for label, _, _ in page.method_rows("cifar10", runs, today)]
    assert not any(note in label for label in labels for note in page.CONFIG_NOTES)
    # a key round 0 does not read (inversion/*) marks the last round's row, not round 0's
    today = {name: ({**planned, "inversion/tv": 0.5}, {}) for name, (planned, _) in today.items()}
    noise, preset = [label for label, _, _ in page.method_rows("cifar10", runs, today)]
    assert noise.startswith("(n+1)-class, noise garbage only (round 0)")
    assert not any(note in noise for note in page.CONFIG_NOTES)
    assert preset.endswith("; not today's config: `inversion/tv` (s0 0.0, s1 0.0, s2 0.0; "
                           "today 0.5)")
    # nor does a run without inverted samples (the control)
    control = {"round": 2, "config": {"rounds/seed": 0, "garbage/policy": "none"}}
    assert page.config_note([control], [{**control["config"], "inversion/tv": 0.5}]) == ""
    assert page.config_note([control], [{**control["config"], "classifier/lr": 0.5}]) != ""
    # runs the plan does not name (a variant, or records without a run name) are not compared
    assert page.method_rows("cifar10", runs, {})[-1][0].endswith("(3 seeds: 0, 1, 2)")


def test_the_openood_summary_puts_a_config_note_under_its_heading() -> None:
    aurocs = {"tinyimagenet": 0.85, "mnist": 0.9, "fashionmnist": 0.95}
    records = [_record(s, 2, aurocs) for s in (0, 1)]
    for row in (row for record in records for row in record["ood"]):
        row["fpr95_ood_positive"] = 0.5
    label = "**preset `cifar10`**, 2 rounds, p_garbage (2 seeds: 0, 1)"
    note = "; seeds differ in `classifier/lr` (s0 0.1, s1 0.2)"
    lines = page.openood_lines("cifar10", [(label + note, records, "p_garbage")])
    assert lines[0] == ("### OpenOOD-style summary: preset `cifar10`, 2 rounds, p_garbage "
                        "(2 seeds: 0, 1) (test, ×100)")
    assert lines[2].endswith(" Its runs: seeds differ in `classifier/lr` (s0 0.1, s1 0.2).")
    assert "| tinyimagenet | near | 85.00 |" in "\n".join(lines)
