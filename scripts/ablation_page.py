"""The results page's inversion ablation section, computed from ``ablation-<variant>-s<seed>``
records (``scripts/results.py ablation ID``; see ``experiments.ABLATION``).

Every number and every yes/no below is computed from those files: per variant, MNIST (the
near-OOD set) AUROC as seed mean ± std and per seed, the mean AUROC over the OOD sets, ID test
accuracy, whether the rounds beat round 0 and the no-inversion control on every seed, the
inverted samples' measures, what each lever changed, and the grid of seed 0.
"""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd
from experiments import (ABLATION, ABLATION_BASE, ABLATION_SOURCE, LABELS, OOD_SETS, RESULTS,
                         ablation_overrides, runs_of)
from selection import GOALS, rank
from study_page import run_cmd

from netinv.records import mean_metric, record_scores

SCORE = "p_garbage"  # the issue's score; the studies' objective
NEAR = {"fashionmnist": "mnist"}  # the near-OOD set the ablation is about
GOAL = {"near_auroc": 0.97, "mean_auroc": 0.98, "id_accuracy": 0.91}  # issue 14
MEASURES = {"garbage_added": "added", "inverted_diversity_features": "diversity (features)",
            "inverted_diversity_pixels": "diversity (pixels)",
            "inverted_frechet": "Fréchet to ID val"}


def _auroc(record: dict[str, Any], ood: str) -> float:
    for row in record["ood"]:
        if (row["ood_set"], row["score"], row["split"]) == (ood, SCORE, "test"):
            return row["auroc"]
    raise KeyError((ood, SCORE, "test"))


def _pm(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _seeds(runs: list[list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    return {recs[0]["config"]["rounds/seed"]: recs for recs in runs}


def variant_runs(all_runs: dict[str, list[dict[str, Any]]]
                 ) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """Variant -> seed -> that run's records (variants without runs left out), ABLATION order."""
    out = {}
    for variant in ABLATION:
        found = _seeds(runs_of(all_runs, f"ablation-{variant}"))
        if found:
            out[variant] = found
    return out


def controls_by_round(all_runs: dict[str, list[dict[str, Any]]]
                      ) -> dict[int, dict[int, dict[str, Any]]]:
    """Round r -> seed -> the no-inversion control's record after r rounds, from every control
    run of the ID set (``ablation-control-*`` and the preset's ``control-*``): a variant with
    R rounds is compared with the control after R rounds, the same training without inverted
    samples. Runs that share a seed and round are the same computation (the rounds are seeded
    per round), so the longer run's record stands for both."""
    out: dict[int, dict[int, dict[str, Any]]] = {}
    runs = runs_of(all_runs, "ablation-control") + runs_of(all_runs, "control")
    for recs in sorted(runs, key=len):
        for rec in recs:
            out.setdefault(rec["round"], {})[rec["config"]["rounds/seed"]] = rec
    return out


def _row(label: str, records: dict[int, dict[str, Any]], near: str, ood_sets: list[str],
         first: dict[int, dict[str, Any]], control: dict[int, dict[str, Any]]) -> str:
    """One table row: near-OOD AUROC (mean ± std, per seed), mean AUROC, accuracy, beats."""
    seeds = sorted(records)
    near_v = [_auroc(records[s], near) for s in seeds]
    mean_v = [mean_metric(records[s], score=SCORE, metric="auroc", split="test") for s in seeds]
    acc = [records[s]["id_test_accuracy"] for s in seeds]

    def beats(other: dict[int, dict[str, Any]]) -> str:
        shared = [s for s in seeds if s in other]
        if not shared or records is other:
            return "–"
        wins = sum(_auroc(records[s], near) > _auroc(other[s], near) for s in shared)
        return f"{'yes' if wins == len(shared) else 'no'} ({wins}/{len(shared)})"

    per_seed = ", ".join(f"{v:.4f}" for v in near_v)
    return (f"| {label} | {_pm(near_v)} | {per_seed} | {_pm(mean_v)} | "
            f"{100 * statistics.mean(acc):.2f}% | {beats(first)} | {beats(control)} |")


def ablation_section(id_set: str, all_runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The ablation's Markdown lines for ``id_set`` (none when it has no ablation runs)."""
    variants = variant_runs(all_runs)
    if not variants or id_set not in NEAR:
        return []
    near, ood_sets = NEAR[id_set], OOD_SETS[id_set]
    last = {v: {s: recs[-1] for s, recs in runs.items()} for v, runs in variants.items()}
    round0 = {s: recs[0] for runs in variants.values() for s, recs in runs.items()}
    controls = controls_by_round(all_runs)
    sets = ", ".join(LABELS[o] for o in ood_sets)
    command = run_cmd("ablation", id_set,
                      [rec for runs in variants.values() for recs in runs.values() for rec in recs])
    out = ["### Inversion ablation", "",
           f"{LABELS[id_set]} as ID, the preset's epochs, test splits, score `{SCORE}`, "
           f"AUROC. Each variant after *paper* adds one lever to the one above it; *control* "
           f"retrains for the same rounds and epochs without any inverted sample "
           f"(`garbage/policy none`), so what extra training alone does is visible; each row "
           f"is compared with the control after as many rounds as it ran. Round 0 "
           f"(noise only) is the same computation for every variant of a seed and computed "
           f"once. Values: {ABLATION_SOURCE}. Reproduce: {command}.", "",
           f"| variant | {LABELS[near]} AUROC | per seed | mean AUROC ({sets}) | ID test acc | "
           f"{LABELS[near]} > round 0 on every seed | > control on every seed |",
           "|---|---|---|---|---|---|---|",
           _row("noise only (round 0)", round0, near, ood_sets, round0, {})]
    names = list(ABLATION)
    for variant, records in last.items():
        skipped = [v for v in names[2:names.index(variant)] if v not in last]  # cumulative
        also = f" (and the levers of {', '.join(skipped)}, not run alone)" if skipped else ""
        rounds = {rec["round"] for rec in records.values()}
        control = (controls.get(rounds.pop(), {})
                   if len(rounds) == 1 and variant != "control" else {})
        out.append(_row(f"{variant}: {ABLATION[variant][0]}{also}", records, near, ood_sets,
                        round0, control))
    out += ["", *settings_lines(id_set, variants), *lever_lines(last, near),
            *goal_lines(last, near), "",
            *validation_lines(id_set, last), ""]
    out += measures_table(variants)
    out += grid_lines(id_set, variants)
    return out


def lever_lines(last: dict[str, dict[int, dict[str, Any]]], near: str) -> list[str]:
    """What each lever changed: seed-mean differences to the variant before it."""
    names = [v for v in ABLATION if v in last and v != "control"]
    parts = []
    for before, after in zip(names, names[1:]):
        shared = sorted(set(last[before]) & set(last[after]))
        if not shared:
            continue
        d_near = statistics.mean(_auroc(last[after][s], near) - _auroc(last[before][s], near)
                                 for s in shared)
        d_mean = statistics.mean(
            mean_metric(last[after][s], score=SCORE, metric="auroc", split="test")
            - mean_metric(last[before][s], score=SCORE, metric="auroc", split="test")
            for s in shared)
        parts.append(f"{after} vs {before}: {LABELS[near]} {d_near:+.4f}, mean {d_mean:+.4f} "
                     f"({len(shared)} seeds)")
    if "control" in last and "paper" in last:
        shared = sorted(set(last["control"]) & set(last["paper"]))
        d = statistics.mean(_auroc(last["paper"][s], near) - _auroc(last["control"][s], near)
                            for s in shared)
        parts.insert(0, f"paper vs control: {LABELS[near]} {d:+.4f} ({len(shared)} seeds)")
    return ["What each lever moved (AUROC, seed mean of the per-seed differences): "
            + "; ".join(parts) + "." if parts else "", ""]


def goal_lines(last: dict[str, dict[int, dict[str, Any]]], near: str) -> list[str]:
    """The issue's goal, checked for every variant with three or more seeds."""
    met = []
    for variant, records in last.items():
        if len(records) < 3 or variant == "control":
            continue
        seeds = sorted(records)
        near_mean = statistics.mean(_auroc(records[s], near) for s in seeds)
        mean_auroc = statistics.mean(mean_metric(records[s], score=SCORE, metric="auroc",
                                                 split="test") for s in seeds)
        acc = statistics.mean(records[s]["id_test_accuracy"] for s in seeds)
        ok = (near_mean >= GOAL["near_auroc"] and mean_auroc >= GOAL["mean_auroc"]
              and acc >= GOAL["id_accuracy"])
        met.append(f"{variant} {'meets' if ok else 'misses'} it ({LABELS[near]} "
                   f"{near_mean:.4f}, mean {mean_auroc:.4f}, accuracy {100 * acc:.2f}%)")
    return [f"Goal (issue 14, seed means): {LABELS[near]} AUROC ≥ {GOAL['near_auroc']}, mean "
            f"AUROC ≥ {GOAL['mean_auroc']}, ID accuracy ≥ {100 * GOAL['id_accuracy']:.0f}%: "
            + ("; ".join(met) if met else "no variant has three seeds yet") + "."]


def measures_table(variants: dict[str, dict[int, list[dict[str, Any]]]]) -> list[str]:
    """The inverted samples' measures per variant and round, seed means."""
    out = ["Inverted samples per round (seed means; `netinv.inverted`: diversity = mean pairwise "
           "distance within a label, in the penultimate features of the classifier that was "
           "inverted and in pixels; Fréchet = distance of their features to the ID val "
           "images'; none without inversion):", "",
           "| variant | round | " + " | ".join(MEASURES.values()) + " |",
           "|---|---|" + "---|" * len(MEASURES)]
    for variant, runs in variants.items():
        if variant == "control":
            continue
        for r in range(1, len(next(iter(runs.values())))):
            cells = []
            for key in MEASURES:
                values = [recs[r][key] for recs in runs.values()
                          if len(recs) > r and recs[r].get(key) is not None]
                cells.append(f"{statistics.mean(values):.2f}" if values else "–")
            out.append(f"| {variant} | {r} | " + " | ".join(cells) + " |")
    return out + [""]


def grid_lines(id_set: str, variants: dict[str, dict[int, list[dict[str, Any]]]]) -> list[str]:
    """Seed 0's last-round grid of every variant that inverts."""
    out = []
    for variant, runs in variants.items():
        if 0 not in runs:
            continue
        r = runs[0][-1]["round"]
        path = RESULTS / id_set / f"ablation-{variant}-grid-round-{r}.png"
        if path.exists():
            out += [f"*{variant}*, round {r}, seed 0 (one row per class):", "",
                    f"![{variant}](results/{id_set}/{path.name})", ""]
    return out


def validation_ranking(id_set: str, last: dict[str, dict[int, dict[str, Any]]]
                       ) -> pd.DataFrame:
    """Every variant with three or more seeds and every score, ranked by the preset rule
    (``selection.rank``: goals met, then val mean AUROC, then ID val accuracy) on the seed means
    of the last round's validation metrics."""
    rows = []
    for variant, records in last.items():
        if len(records) < 3:
            continue
        recs = list(records.values())
        for score in [s for s in record_scores(recs[0])
                      if all(s in record_scores(r) for r in recs)]:
            rows.append({
                "variant": variant, "score": score, "round": recs[0]["round"],
                "auroc": statistics.mean(mean_metric(r, score=score, metric="auroc",
                                                     split="val") for r in recs),
                "fpr95": statistics.mean(mean_metric(r, score=score, metric="fpr95",
                                                     split="val") for r in recs),
                "id_val_accuracy": statistics.mean(r["id_val_accuracy"] for r in recs)})
    return rank(pd.DataFrame(rows), GOALS[id_set]) if rows else pd.DataFrame()


def validation_lines(id_set: str, last: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """Which variant the preset rule picks on validation (seed means), and by how much."""
    table = validation_ranking(id_set, last)
    if table.empty:
        return ["On validation: no variant has three seeds yet."]
    best = table.iloc[0]
    paper = table[table["variant"] == "paper"]
    versus = (f"; the former preset's best (*paper*, `{paper.iloc[0]['score']}`) has "
              f"{paper.iloc[0]['auroc']:.4f}" if len(paper) and best["variant"] != "paper"
              else "")
    return [f"On validation (the preset rule of `scripts/selection.py` on seed means of the "
            f"last round, every score): *{best['variant']}* with `{best['score']}` ranks first "
            f"(val mean AUROC {best['auroc']:.4f}, FPR95 {best['fpr95']:.4f}, ID val accuracy "
            f"{100 * best['id_val_accuracy']:.2f}%, {int(best['goals_met'])} of 3 goals)"
            f"{versus}."]


def settings_lines(id_set: str, variants: dict[str, dict[int, list[dict[str, Any]]]]
                   ) -> list[str]:
    """Each variant's full difference to the former preset, and the variants without runs."""
    preset = ABLATION_BASE[id_set]
    parts = []
    for variant in variants:
        diff = {k: v for k, v in ablation_overrides(id_set, variant).items()
                if preset.get(k) != v}
        text = ", ".join(f"`{k}={v}`" for k, v in diff.items()) or "the former preset"
        parts.append(f"*{variant}* ({len(variants[variant])} seeds): {text}")
    missing = [v for v in ABLATION if v not in variants]
    lines = ["Settings, as differences to the former preset (`experiments.ABLATION_BASE`): "
             + "; ".join(parts) + "."]
    if missing:
        lines.append(f"Not run: {', '.join(missing)} (their levers are included, cumulatively, "
                     f"in the variants after them).")
    return lines + [""]
