"""The results page, ``docs/results.md``: every number and statement computed from the records.

Reads only what ``scripts/experiments.py`` and ``scripts/one_vs_rest.py`` stored under
``docs/results/`` (the runs' JSON lines, the imported studies' Parquet tables and
``study.json``, ``unseen.json``, the one-vs-rest records: section by ``ovr_page.py``) and the
selection rule (``scripts/selection.py``); a finding in the prose is computed from those files,
so re-importing another study or re-running a preset rewrites it. The only fixed numbers are
the cited references (the seed project, paper 2505.23448) and the goals.
"""

from __future__ import annotations

import json
import statistics
from typing import Any, Callable

import numpy as np
import pandas as pd
from ablation_page import ablation_section
from experiments import (ID_SETS, LABELS, OOD_SETS, RESULTS, ROOT, config_of, load_runs,
                         preset_plan, runs_of, same_value, study_file)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from selection import GOALS
from study_page import cpu_hours, run_cmd, study_section

from netinv.config import Config
from netinv.knn import DEFAULT_K
from netinv.metrics import METRIC_NAMES
from netinv.records import mean_metric, record_scores
from netinv.round0_cache import round0_fields
from netinv.scores import FUSED
from netinv.summary import summary_markdown

PAGE = ROOT / "docs" / "results.md"
# the seed project (MNIST ID, score UE) and paper 2505.23448 Table 1 (MNIST model), test splits
SEED_PROJECT = {"fashionmnist": (0.9784, 0.0747), "cifar10": (0.9704, 0.1137),
                "svhn": (0.8381, 0.4550), "cifar100": (0.9626, 0.1430),
                "tinyimagenet": (0.9692, 0.1204)}  # (AUROC, FPR95) per OOD set
SEED_PROJECT_MEAN = (0.9437, 0.1814)  # over its 5 OOD sets (SVHN and CIFAR-100 included)
PAPER_GARBAGE_SHARE = {"fashionmnist": 0.895, "cifar10": 0.994}
PAPER_ID_ACC = 0.991


# ----------------------------------------------------------------------------- cells


def cell(record: dict[str, Any], ood: str, score: str, metric: str, split: str = "test"
         ) -> float:
    """One OOD row's ``metric`` of a record (raises ``KeyError`` naming the row if absent)."""
    for row in record["ood"]:
        if (row["ood_set"], row["score"], row["split"]) == (ood, score, split):
            return row[metric]
    raise KeyError((ood, score, metric, split))


def pm(values: list[float], digits: int = 4) -> str:
    """Mean ± std (sample std) over seeds; a single value as is."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def pct(values: list[float]) -> str:
    """Mean ± std over seeds as a percentage; a single value as is."""
    if len(values) == 1:
        return f"{100 * values[0]:.2f}%"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}%"


def seeds(records: list[dict[str, Any]]) -> str:
    """"seed 0" or "3 seeds: 0, 1, 2"."""
    values = [r["config"]["rounds/seed"] for r in records]
    if len(values) == 1:
        return f"seed {values[0]}"
    return f"{len(values)} seeds: {', '.join(map(str, values))}"


# runs of the preset with one lever changed (run name prefix -> row label), as scripts/results.py
# run and staged candidates name them
VARIANT_ROWS = {
    "paper3": "inversion, paper's 3 losses (δ=0)",
    "notta": "preset without test-time translation (`classifier/tta_shift` 0)",
    "w16": "the first preset: width 16, 14 first epochs, flip views only",
}


CONFIG_NOTES = ("; seeds differ in ", "; not today's config: ")  # how config_note starts


def keys_read(record: dict[str, Any]) -> Callable[[str], bool]:
    """Whether a flat config key can have changed ``record``: a round-0 record (the noise-only
    round, or the plain baseline's only round) reads only round 0's keys
    (``netinv.round0_cache.round0_fields``: no inversion/*, no exclusion settings, no round
    count), a run without inverted samples (``garbage/policy none``) no inversion/*, any other
    every key."""
    if record["round"] == 0:
        return set(round0_fields(Config())).__contains__
    if record["config"].get("garbage/policy") == "none":
        return lambda key: not key.startswith("inversion/")
    return lambda key: True


def config_note(records: list[dict[str, Any]],
                planned: list[dict[str, Any]] | None = None) -> str:
    """What a row averaging ``records`` (one per seed) must say about their configs
    (``experiments.config_of``, the keys the runs read up to these records (:func:`keys_read`):
    the seed and SAME_RUN_FREE keys aside): ``""`` when they ran
    one config and, where ``planned`` (today's overrides for each record, in order) is given,
    that config is today's; ``"; not today's config: `key` (s0 3, s1 0; today 3)"`` naming each
    key in which a seed's run differs from today's plan; without a plan, ``"; seeds differ in
    `key` (s0 3, s1 0)"`` naming each key that differs between seeds."""
    read = keys_read(records[0])
    ran = [{k: v for k, v in config_of(r["config"]).items() if read(k)} for r in records]
    seeds = [r["config"]["rounds/seed"] for r in records]
    now = [config_of(p) for p in planned] if planned else None

    def shown(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def values(key: str) -> str:
        return ", ".join(f"s{seed} {shown(c[key])}" for seed, c in zip(seeds, ran))

    keys = [k for k in ran[0] if k != "rounds/seed"]
    if now is not None:
        stale = [k for k in keys if any(not same_value(c[k], n[k]) for c, n in zip(ran, now))]
        if stale:
            return CONFIG_NOTES[1] + ", ".join(
                f"`{k}` ({values(k)}; today {shown(now[0][k])})" for k in stale)
        return ""
    differ = [k for k in keys if any(not same_value(c[k], ran[0][k]) for c in ran)]
    return CONFIG_NOTES[0] + ", ".join(f"`{k}` ({values(k)})" for k in differ) if differ else ""


def method_rows(id_set: str, runs: dict[str, list[dict[str, Any]]],
                plan: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = None
                ) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(label, one record per seed, score) for every method of the comparison. ``plan``
    (``experiments.preset_plan``; None: no comparison with it): the rows of runs it names
    (preset, its round 0, plain baseline, control) say when a seed ran another config than
    today's; every row says when its seeds differ (:func:`config_note`)."""
    rows = []
    nclass = [recs[0] for recs in runs_of(runs, "nclass")]
    for score in ("msp", "energy", FUSED):  # fused: where the runs had rounds/fitted_scores
        if nclass and all(score in record_scores(r) for r in nclass):
            rows.append((f"plain n-class classifier, {score} ({seeds(nclass)})", nclass,
                         score))
    preset_runs = runs_of(runs, "preset")
    if preset_runs:
        noise = [r[0] for r in preset_runs]
        score = val_best_mean(noise)
        rows.append((f"(n+1)-class, noise garbage only (round 0), {score} "
                     f"({seeds(noise)})", noise, score))
    control = [r[-1] for r in runs_of(runs, "control")]
    if control:  # the preset's rounds and epochs on the noise pool alone (garbage/policy none)
        score = val_best_mean(control)
        rows.append((f"(n+1)-class, same rounds without inverted samples (control), "
                     f"{control[0]['round']} rounds, {score} ({seeds(control)})", control,
                     score))
    for kind, label in VARIANT_ROWS.items():
        variant = [r[-1] for r in runs_of(runs, kind)]
        if variant:
            score = val_best_mean(variant)
            rows.append((f"{label}, {variant[0]['round']} rounds, {score} ({seeds(variant)})",
                         variant, score))
    if preset_runs:
        final = [r[-1] for r in preset_runs]
        score = val_best_mean(final)
        rows.append((f"**preset `{id_set}`**, {final[0]['round']} rounds, {score} "
                     f"({seeds(final)})", final, score))
        if FUSED in record_scores(final[0]):  # baselines run before the preset fitted scores
            rows = [(label + (", logit scores only: run without rounds/fitted_scores"
                              if FUSED not in record_scores(recs[0]) else ""), recs, sc)
                    for label, recs, sc in rows]
    # a row averages its seeds, so say when they did not run one config, or not today's (a
    # preset changed and not every run has been redone yet)
    def planned(records: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        names = [r.get("run") for r in records]  # e.g. "preset-s1", as preset_plan names it
        return [plan[n][0] for n in names] if plan and all(n in plan for n in names) else None

    return [(label + config_note(recs, planned(recs)), recs, sc) for label, recs, sc in rows]


def val_best_mean(records: list[dict[str, Any]]) -> str:
    """The score with the best validation mean AUROC averaged over ``records`` (seeds)."""
    common = [s for s in record_scores(records[0]) if all(s in record_scores(r) for r in records)]
    return max(common, key=lambda s: statistics.mean(
        mean_metric(r, score=s, metric="auroc", split="val") for r in records))


def rounds_effect(id_set: str, runs: dict[str, list[dict[str, Any]]], score: str
                  ) -> list[str]:
    """What the inversion rounds added: each OOD set's AUROC at round 0 (noise-only) and at the
    last round of the same preset runs, seed mean ± std, val and test."""
    preset_runs = runs_of(runs, "preset")
    parts = []
    for ood in OOD_SETS[id_set]:
        cells = []
        for split in ("val", "test"):
            first = [cell(r[0], ood, score, "auroc", split) for r in preset_runs]
            last = [cell(r[-1], ood, score, "auroc", split) for r in preset_runs]
            cells.append(f"{split} {pm(first)} → {pm(last)}")
        parts.append(f"{LABELS[ood]}: {'; '.join(cells)}")
    return ["What the inversion rounds add (preset runs, AUROC of " + score + ", round 0 → "
            "last round, seed mean ± std): " + " · ".join(parts) + ".", ""]


def seed_mean(recs: list[dict[str, Any]], score: str, metric: str, split: str = "test"
              ) -> float:
    """Mean over records (seeds) of the OOD-set mean of ``metric``."""
    return statistics.mean(mean_metric(r, score=score, metric=metric, split=split)
                           for r in recs)


def goal_verdict(id_set: str, recs: list[dict[str, Any]], score: str
                 ) -> list[tuple[str, bool, str]]:
    """(goal name, met, sentence) for each of the ID set's goals, on the seed means (test)."""
    goal_auroc, goal_fpr, goal_acc = GOALS[id_set]
    acc = statistics.mean(r["id_test_accuracy"] for r in recs)
    au, fp = seed_mean(recs, score, "auroc"), seed_mean(recs, score, "fpr95")
    acc_gap = 100 * (goal_acc - acc)
    return [("mean AUROC", au >= goal_auroc, f"mean AUROC {au:.4f} vs goal ≥ {goal_auroc} "
             f"({'met' if au >= goal_auroc else f'missed by {goal_auroc - au:.4f}'})"),
            ("mean FPR95", fp <= goal_fpr, f"mean FPR95 {fp:.4f} vs goal ≤ {goal_fpr} "
             f"({'met' if fp <= goal_fpr else f'missed by {fp - goal_fpr:.4f}'})"),
            ("ID test accuracy", acc >= goal_acc,
             f"ID test acc {100 * acc:.2f}% vs goal ≥ {100 * goal_acc:.1f}% "
             f"({'met' if acc >= goal_acc else f'missed by {acc_gap:.2f} points'})")]


def summary_lines(id_set: str, rows: list[tuple[str, list[dict[str, Any]], str]]
                  ) -> list[str]:
    """The methods' mean test metrics, the cited references, and the goal verdict."""
    oods = OOD_SETS[id_set]
    out = ["| method | ID test acc | mean AUROC | mean FPR95 |", "|---|---|---|---|"]
    for name, recs, score in rows:
        acc = [r["id_test_accuracy"] for r in recs]
        au = [mean_metric(r, score=score, metric="auroc", split="test") for r in recs]
        fp = [mean_metric(r, score=score, metric="fpr95", split="test") for r in recs]
        out.append(f"| {name} | {pct(acc)} | {pm(au)} | {pm(fp)} |")
    if id_set == "mnist":
        out.append(f"| seed project (UE; mean over 5 OOD sets incl. SVHN, CIFAR-100) | – | "
                   f"{SEED_PROJECT_MEAN[0]:.4f} | {SEED_PROJECT_MEAN[1]:.4f} |")
        seed_ref = [statistics.mean(SEED_PROJECT[o][i] for o in oods) for i in (0, 1)]
        out.append(f"| seed project, same 3 OOD sets as ours | – | {seed_ref[0]:.4f} | "
                   f"{seed_ref[1]:.4f} |")
        out.append(f"| paper 2505.23448 (MNIST model) | {100 * PAPER_ID_ACC:.1f}% | – | – |")
    _, recs, score = rows[-1]
    verdict = [sentence for _, _, sentence in goal_verdict(id_set, recs, score)]
    return out + ["", "Goal (issue, shipped preset, seed mean): " + "; ".join(verdict) + ".",
                  ""]


def limits(id_set: str, runs: dict[str, list[dict[str, Any]]], score: str) -> list[str]:
    """When the preset misses a goal: which OOD set is weakest, and what its inversion rounds
    did to that set per seed (val and test), all computed from the preset runs."""
    preset_runs = runs_of(runs, "preset")
    missed = [name for name, met, _ in goal_verdict(id_set, [r[-1] for r in preset_runs],
                                                    score) if not met]
    if not missed:
        return []
    test = {o: [cell(r[-1], o, score, "auroc") for r in preset_runs] for o in OOD_SETS[id_set]}
    weakest = min(test, key=lambda o: statistics.mean(test[o]))
    others = [statistics.mean(v) for o, v in test.items() if o != weakest]
    text = (f"What limits {LABELS[id_set]} (computed from the preset runs): the goal on "
            f"{' and '.join(missed)} is missed. The weakest OOD set is {LABELS[weakest]}, test "
            f"AUROC {pm(test[weakest])}")
    text += f", against {min(others):.4f} or more for the others." if others else "."
    for split in ("val", "test"):
        first = [cell(r[0], weakest, score, "auroc", split) for r in preset_runs]
        last = [cell(r[-1], weakest, score, "auroc", split) for r in preset_runs]
        change = ", ".join(f"{b - a:+.4f}" for a, b in zip(first, last))
        mean_change = statistics.mean(last) - statistics.mean(first)
        text += (f" On {split}, its AUROC changes from round 0 to the last round by {change} "
                 f"({seeds([r[-1] for r in preset_runs])}); the seed mean "
                 f"{'rises' if mean_change > 0 else 'falls'} by {abs(mean_change):.4f}.")
    return [text, ""]


def below_chance(id_set: str, rows: list[tuple[str, list[dict[str, Any]], str]]
                 ) -> list[tuple[str, str, float]]:
    """(method, OOD set label, seed-mean test AUROC) for every cell below 0.5."""
    return [(name, LABELS[ood], statistics.mean(cell(r, ood, score, "auroc") for r in recs))
            for name, recs, score in rows for ood in OOD_SETS[id_set]
            if statistics.mean(cell(r, ood, score, "auroc") for r in recs) < 0.5]


def per_ood_lines(id_set: str, rows: list[tuple[str, list[dict[str, Any]], str]]
                  ) -> list[str]:
    """One table per OOD set: every method's test metrics, and the cited references."""
    out = []
    for ood in OOD_SETS[id_set]:
        out += [f"### {LABELS[id_set]} vs {LABELS[ood]} (test)", "",
                "| method | AUROC | AUPR-In | AUPR-Out | FPR95 (ID+) | sent to garbage |",
                "|---|---|---|---|---|---|"]
        for name, recs, score in rows:
            vals = {m: [cell(r, ood, score, m) for r in recs]
                    for m in ("auroc", "aupr_in", "aupr_out", "fpr95", "garbage_share")}
            out.append(f"| {name} | {pm(vals['auroc'])} | {pm(vals['aupr_in'])} | "
                       f"{pm(vals['aupr_out'])} | {pm(vals['fpr95'])} | "
                       f"{pct(vals['garbage_share'])} |")
        if id_set == "mnist" and ood in SEED_PROJECT:
            a, f = SEED_PROJECT[ood]
            out.append(f"| seed project (UE) | {a:.4f} | – | – | {f:.4f} | – |")
        if id_set == "mnist" and ood in PAPER_GARBAGE_SHARE:
            out.append(f"| paper 2505.23448 | – | – | – | – | "
                       f"{100 * PAPER_GARBAGE_SHARE[ood]:.1f}% |")
        out.append("")
    return out


def openood_lines(id_set: str, rows: list[tuple[str, list[dict[str, Any]], str]]
                  ) -> list[str]:
    """The preset's last round as OpenOOD v1.5 reports a benchmark: test metrics x100 per OOD
    set (seed mean), then near- and far-OOD means (``netinv.metrics.OOD_GROUPS``)."""
    name, recs, score = rows[-1]

    def seed_mean_or_none(ood: str, metric: str) -> float | None:
        rows_ = [row for r in recs for row in r["ood"]
                 if (row["ood_set"], row["score"], row["split"]) == (ood, score, "test")]
        values = [row.get(metric) for row in rows_]
        return None if not values or None in values else statistics.mean(values)

    per_set = {ood: {m: seed_mean_or_none(ood, m) for m in METRIC_NAMES}
               for ood in OOD_SETS[id_set]}
    lacking = any(v is None for metrics in per_set.values() for v in metrics.values())
    note = (" The stored runs predate FPR95 (OOD+), and their stored ROC points are decimated, "
            "too coarse to recompute it: it shows as – and appears for runs made from now on."
            if lacking else "")
    config = ""  # a config note (config_note) goes under the heading, not into it
    for marker in CONFIG_NOTES:
        if marker in name:
            name, _, rest = name.partition(marker)
            config = f" Its runs: {marker.removeprefix('; ')}{rest}."
    return [f"### OpenOOD-style summary: {name.replace('**', '')} (test, ×100)", "",
            "Per OOD set, then the near- and far-OOD means as OpenOOD v1.5 reports them "
            "(grouping: `netinv.metrics.OOD_GROUPS`). FPR95 (ID+): OOD accepted at 95% ID "
            "accepted (ODIN, Energy); FPR95 (OOD+): ID flagged at 95% OOD flagged (OpenOOD "
            "v1.5, pytorch-ood). AUPR-In/Out are average precision (OpenOOD and pytorch-ood use "
            "the trapezoid rule: slightly higher)." + note + config, "",
            summary_markdown(id_set, per_set).rstrip("\n"), ""]


def preset_rounds_lines(id_set: str, seed0: list[dict[str, Any]], score: str) -> list[str]:
    """The preset's seed-0 run round by round, its ROC figures and its inverted images."""
    command = run_cmd("run", id_set, seed0)
    out = [f"### Preset `{id_set}` round by round (seed 0, {score}, test)", "",
           "Round 0 is the noise-only baseline; each later round inverts the classifier, sends "
           "the inversions to the garbage class and retrains. Reproduce: " + command + ".", "",
           "| round | ID test acc | garbage pool | mean AUROC | mean FPR95 | round time (s) |",
           "|---|---|---|---|---|---|"]
    for rec in seed0:
        out.append(f"| {rec['round']} | {100 * rec['id_test_accuracy']:.2f}% | "
                   f"{rec['garbage_size']} | "
                   f"{mean_metric(rec, score=score, metric='auroc', split='test'):.4f} | "
                   f"{mean_metric(rec, score=score, metric='fpr95', split='test'):.4f} | "
                   f"{rec['time_round_s']:.1f} |")
    out.append("")
    if not seed0:
        return out
    fig_dir = RESULTS / id_set
    roc_figure(id_set, seed0[-1], score, fig_dir / "roc-preset-s0.png")
    roc_figure(id_set, seed0[0], score, fig_dir / "roc-noise-only-s0.png")
    out += [f"ROC curves (test, seed 0, {score}; regenerated from the stored ROC points by "
            "`scripts/results.py page`): the preset after its last round, and its round 0 "
            "(noise-only garbage).", "",
            f"![ROC, preset](results/{id_set}/roc-preset-s0.png) "
            f"![ROC, noise only](results/{id_set}/roc-noise-only-s0.png)", ""]
    grids = sorted(fig_dir.glob("grid-round-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if grids:
        out += [f"Inverted images across rounds (seed 0, one row per class; written by "
                f"{command}):", "",
                " ".join(f"![round {p.stem.rsplit('-', 1)[1]}](results/{id_set}/{p.name})"
                         for p in grids), ""]
    return out


def roc_figure(id_set: str, record: dict[str, Any], score: str, path) -> None:
    """The record's stored test ROC points of ``score``, one curve per OOD set (symlog x)."""
    fig = Figure(figsize=(5, 4.6))
    FigureCanvasAgg(fig)  # object API: no pyplot state, no global backend switch
    ax = fig.subplots()
    for ood, points in record["roc_test"][score].items():
        xy = np.array(points)
        ax.plot(xy[:, 0], xy[:, 1], lw=1.4,
                label=f"{LABELS[ood]}: AUROC {cell(record, ood, score, 'auroc'):.4f}, "
                      f"FPR95 {cell(record, ood, score, 'fpr95'):.4f}")
    chance = np.linspace(0, 1, 200)
    ax.plot(chance, chance, color="gray", lw=0.8, ls="--")  # chance, curved by the symlog axis
    ax.axvline(0.05, color="black", lw=0.8, ls=":")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ID test images flagged as OOD (symlog)")
    ax.set_ylabel("OOD test images flagged as OOD")
    ax.set_title(f"{LABELS[id_set]} ID, {record['run']}, round {record['round']}, {score}",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def unseen_section(id_set: str) -> list[str]:
    """The shipped detector on OOD sets no choice saw (``scripts/unseen_ood.py``)."""
    path = RESULTS / "unseen.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text()).get(id_set, {})
    out = ["### The shipped detector on OOD sets nothing was chosen on", "",
           f"`netinv/presets/{id_set}.pt` (seed 0) loaded with `netinv.Detector.load`, scoring the "
           f"{LABELS[id_set]} test split against sets built offline by "
           "`scripts/unseen_ood.py` (its docstring says how); reproduce: "
           "`.venv/bin/python scripts/unseen_ood.py --data-root ../shared/data`.", "",
           "| set | images | score | AUROC | AUPR-In | AUPR-Out | FPR95 | sent to garbage |",
           "|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        out.append(f"| {name} | {m['count']} | {m['score']} | {m['auroc']:.4f} | "
                   f"{m['aupr_in']:.4f} | {m['aupr_out']:.4f} | {m['fpr95']:.4f} | "
                   f"{100 * m['garbage_share']:.1f}% |")
    return out + [""]




def fitted_section(id_set: str) -> list[str]:
    """The shipped detector's scores fitted on ID training images (``knn``, ``layer_stats``,
    ``fused``) beside its logit scores (``scripts/fitted_scores.py``), and the same for the
    preset's plain n-class baseline and other detector files when the file has them."""
    path = RESULTS / "fitted_scores.json"
    if not path.exists() or id_set not in json.loads(path.read_text()):
        return []
    result = json.loads(path.read_text())[id_set]
    if not result["ood"]:  # no OOD set's data was present when it ran
        return []
    plain = result.get("plain")
    flags = ((f" --plain {id_set}" + (f"={plain['file']}" if "file" in plain else ""))
             if plain else "")
    flags += "".join(f" --detector {id_set}:{label}={other['file']}"
                     for label, other in result.get("others", {}).items())
    out = ["### Scores fitted on ID training images: KNN, layer statistics, fused", "",
           f"`netinv/presets/{id_set}.pt` (seed 0) after `Detector.fit` on a seeded draw of "
           f"{LABELS[id_set]} *training* images: {result['bank_size']:,} form the bank, "
           f"{result['held_out']:,} more are held out. `knn`: distance to the k-th nearest "
           f"L2-normalised penultimate feature of the bank (`netinv.knn`). `layer_stats`: "
           f"Mahalanobis distance of the per-layer channel means to the bank's, each of the "
           f"{result['layers']} convolutions{_from_convolution(result)} scaled by its held-out "
           f"median, log of the mean "
           f"(`netinv.layer_stats`). `fused`: {' + '.join(result['fused'])}, each standardised "
           f"by its held-out mean and std. Full test split ({result['test_images']:,} images, "
           f"ID accuracy {100 * result['accuracy']:.2f}%) against each OOD set's full test "
           f"split; every k is shown, none chosen on these numbers (the default is "
           f"{DEFAULT_K}). The detector's own score is `{result['score']}`. Fit and scoring took "
           f"{result['total_s']:.0f} s. Reproduce: "
           f"`.venv/bin/python scripts/fitted_scores.py --data-root ../shared/data{flags}`.", ""]
    out += _fitted_table(result)
    if plain and plain["ood"]:
        saved = "file" in plain
        source = (f"`run_plain`'s network saved by `scripts/results.py run` as `nclass-s0` "
                  f"(`{plain['file']}`)" if saved else "trained by the script with `run_plain`")
        out += [f"The same scores on the preset's **plain n-class baseline** (seed 0, {source}, "
                f"no garbage class, ID accuracy {100 * plain['accuracy']:.2f}%; "
                f"{plain['total_s']:.0f} s{'' if saved else ' with its training'}): the scores "
                "on a plain network's features, as OpenOOD reports KNN, against the same on the "
                "method's.", ""]
        out += _fitted_table(plain)
    for label, other in result.get("others", {}).items():
        if other["ood"]:
            out += [f"The same scores on **{label}** (`{other['file']}`, ID accuracy "
                    f"{100 * other['accuracy']:.2f}%, own score `{other['score']}`).", ""]
            out += _fitted_table(other)
    return out


def layer_first_section(id_set: str) -> list[str]:
    """Which convolutions the layer statistics use (``rounds/layer_stats_first``), each choice
    on the shipped detector, chosen on validation splits (``scripts/layer_stats_first.py``)."""
    path = RESULTS / "layer_stats_first.json"
    if not path.exists() or id_set not in json.loads(path.read_text()):
        return []
    result = json.loads(path.read_text())[id_set]
    ood_sets, chosen = result["ood"], result["chosen"]
    labels = {f: f"**{f}** (chosen)" if int(f) == chosen else f for f in result["firsts"]}
    out = ["### Which convolutions the layer statistics use (validation splits)", "",
           f"`netinv/presets/{id_set}.pt` (seed 0, its classifier unchanged) with its fitted "
           f"scores refitted as a run fits them (`netinv.pipeline.fit_scores`) for every first "
           f"convolution f (`rounds/layer_stats_first`: the convolutions before f are skipped), "
           f"on the run's splits: the ID validation images held out of training and each OOD "
           f"set's val half choose f (highest mean fused AUROC), the test halves only report. "
           f"The shipped detector uses f = {result['shipped_first']}; validation picks "
           f"**f = {chosen}**. {result['total_s']:.0f} s. Reproduce: `.venv/bin/python "
           f"scripts/layer_stats_first.py {id_set} --data-root ../shared/data`.", "",
           "| first convolution f | val fused, mean AUROC | test fused: "
           + " | ".join(f"{LABELS[o]} AUROC / FPR95" for o in ood_sets)
           + " | test fused, mean AUROC | test layer_stats, mean AUROC |",
           "|---|---|" + "---|" * (len(ood_sets) + 2)]
    for first, row in result["firsts"].items():
        val, test = row["val"], row["test"]  # {ood_set: {score: metrics}}
        cells = [f"{test[o][FUSED]['auroc']:.4f} / {test[o][FUSED]['fpr95']:.4f}"
                 for o in ood_sets]
        out.append(f"| {labels[first]} | {_mean_auroc(val, FUSED):.4f} | " + " | ".join(cells)
                   + f" | {_mean_auroc(test, FUSED):.4f} | "
                   f"{_mean_auroc(test, 'layer_stats'):.4f} |")
    unseen = result.get("unseen", [])
    if unseen:
        out += ["", "The same refits against the sets of `scripts/unseen_ood.py` (built offline, "
                "never chosen on; the section above), `fused` AUROC against the ID test split:",
                "", "| first convolution f | " + " | ".join(unseen) + " | mean AUROC |",
                "|---|" + "---|" * (len(unseen) + 1)]
        for first, row in result["firsts"].items():
            out.append(f"| {labels[first]} | " + " | ".join(f"{row['unseen'][n][FUSED]['auroc']:.4f}"
                                                      for n in unseen)
                       + f" | {_mean_auroc(row['unseen'], FUSED):.4f} |")
    return out + [""]


def _from_convolution(result: dict[str, Any]) -> str:
    """`` from convolution f on`` when a fitted-scores entry skipped the first f > 0, else ``""``
    (entries written before the key existed used every convolution)."""
    first = result.get("layer_first", 0)
    return f" from convolution {first} on" if first else ""


def _mean_auroc(per_ood: dict[str, dict], score: str) -> float:
    """Mean AUROC of ``score`` over the OOD sets of ``{ood_set: {score: {"auroc": ...}}}``."""
    return statistics.fmean(entry[score]["auroc"] for entry in per_ood.values())


def _fitted_table(result: dict[str, Any]) -> list[str]:
    """One row per score of a ``fitted_scores.json`` entry, AUROC / FPR95 per OOD set, and
    the mean AUROC."""
    ood_sets = list(result["ood"])
    names = [n for n in next(iter(result["ood"].values())) if n != "images"]
    out = ["| score | " + " | ".join(f"{LABELS[o]} AUROC / FPR95" for o in ood_sets)
           + " | mean AUROC |", "|---|" + "---|" * (len(ood_sets) + 1)]
    for name in names:
        cells = [f"{result['ood'][o][name]['auroc']:.4f} / {result['ood'][o][name]['fpr95']:.4f}"
                 for o in ood_sets]
        mean = sum(result["ood"][o][name]["auroc"] for o in ood_sets) / len(ood_sets)
        label = name.replace("knn-", "KNN, k = ")
        out.append(f"| {label} | " + " | ".join(cells) + f" | {mean:.4f} |")
    return out + [""]


def compute_lines(id_set: str, runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Each run's wall time and machine, and the totals (runs and study)."""
    out = ["### Compute", "", "| run | rounds | wall time (s) | machine |", "|---|---|---|---|"]
    for key, recs in runs.items():
        m = recs[-1]["machine"]
        bf16 = m.get("bf16")  # older records: unknown; the CPU's capability, so with rounds/amp
        if bf16 is not None:
            bf16 = bool(bf16 and recs[-1]["config"].get("rounds/amp", True))
        amp = {True: ", bf16", False: ", fp32"}.get(bf16, "")
        out.append(f"| {key} | {recs[-1]['round']} | {recs[-1]['run_wall_s']:.0f} | "
                   f"{m['cpu']}, {m['torch_threads']} torch threads{amp}, torch {m['torch']} |")
    total = sum(recs[-1]["run_wall_s"] for recs in runs.values())
    study_h, gpu = 0.0, False
    if study_file(id_set, "trials").exists():
        trials = pd.read_parquet(study_file(id_set, "trials"))
        study_h, gpu = cpu_hours(trials), bool(trials["gpus"].fillna(0).gt(0).any())
    devices = {recs[-1]["config"].get("rounds/device") for recs in runs.values()}
    cores = sorted({recs[-1]["machine"]["cores"] for recs in runs.values()})
    no_gpu = "; no GPU" if devices == {"cpu"} and not gpu else ""
    return out + ["", f"Total: {total / 60:.1f} min of wall time for these runs, plus "
                  f"{study_h:.2f} CPU-hours for the study{no_gpu}. The runs' machine had "
                  f"{' or '.join(map(str, cores))} cores; wall times are as measured, with "
                  "whatever else it ran at the time.", ""]


def id_section(id_set: str) -> list[str]:
    """Everything about one ID set: methods, goals, limits, OOD sets, rounds, study, compute."""
    runs = load_runs(id_set)
    command = run_cmd("run", id_set, [rec for recs in runs_of(runs, "preset") for rec in recs])
    out = [f"## {LABELS[id_set]} as ID", ""]
    if not runs_of(runs, "preset"):
        return out + [f"Not run yet: {command}.", ""]
    rows = method_rows(id_set, runs, preset_plan(id_set))
    score = rows[-1][2]
    out += [f"Test splits; mean over {', '.join(LABELS[o] for o in OOD_SETS[id_set])}. "
            f"Reproduce: {command}, then `.venv/bin/python scripts/results.py page`.", ""]
    out += summary_lines(id_set, rows)
    if any(note in rows[-1][0] for note in CONFIG_NOTES):
        out += ["The preset's seeds did not all run today's config (its row says in what), so "
                "its seed means on this page mix configs until those runs are redone "
                f"({command} with `--only` and their names).", ""]
    out += rounds_effect(id_set, runs, score) + limits(id_set, runs, score)
    out += per_ood_lines(id_set, rows)
    out += openood_lines(id_set, rows)
    out += preset_rounds_lines(id_set, runs.get("preset-s0", []), score)
    out += study_section(id_set, runs)
    out += ablation_section(id_set, runs)
    out += unseen_section(id_set)
    out += fitted_section(id_set)
    out += layer_first_section(id_set)
    out += compute_lines(id_set, runs)
    return out


def intro() -> list[str]:
    """What every run shares, the baselines, and which cells fall below chance."""
    below = []
    for id_set in ID_SETS:
        runs = load_runs(id_set)
        if runs_of(runs, "preset"):
            below += [(LABELS[id_set], *c) for c in below_chance(
                id_set, method_rows(id_set, runs, preset_plan(id_set)))]
    groups: dict[tuple[str, str], list[str]] = {}
    for id_label, method, ood, auroc in below:
        groups.setdefault((method, id_label), []).append(f"{ood} {auroc:.4f}")
    below_text = "".join(f" Here: {method} with {id_label} as ID on {', '.join(cells)}."
                         for (method, id_label), cells in groups.items())
    return ["# Results: shipped presets vs baselines", "",
            "Generated by `.venv/bin/python scripts/results.py page` from the records under "
            "`docs/results/`; do not edit by hand. All runs: the same code "
            "(`netinv.pipeline`: `run_rounds`, `run_plain` for the plain baseline), the same "
            "seeded splits (ID val held out of ID train; each OOD set split once into val and "
            "test), CPU only. Choices (preset, reported score) use validation splits only; "
            "every table shows test splits. Scores are higher = more OOD; FPR95 treats ID as "
            "positive (share of OOD accepted at 95% ID acceptance, the ODIN / Energy "
            "convention); FPR95 (OOD+) is OpenOOD's and pytorch-ood's (share of ID flagged at "
            "95% OOD detection). CIFAR-10 is the offline "
            "JPEG re-encoded copy.", "",
            "Baselines: *plain n-class* is the same CNN with n outputs and no garbage class, "
            "trained like round 0 (`netinv.pipeline.run_plain`; scored with its max softmax "
            "(`msp`) and `energy`). *Noise-only* is round 0 of the preset runs: (n+1) classes "
            "with a noise garbage class, no inversion. *Control* (where run) is the preset's "
            "rounds and epochs with `garbage/policy none`: the same retraining on the noise "
            "pool alone, so what the rounds add beyond it is the inverted samples' doing. "
            "*Paper's 3 losses* is the preset "
            "with `inversion/delta_ortho 0` (KL + CE + cosine). An AUROC below 0.5 means the "
            "score ranks OOD as *more* in-distribution than ID (mean test AUROC over seeds)."
            + below_text, ""]


def write_page() -> None:
    """Write ``docs/results.md`` (and its ROC figures) from the stored records."""
    from ovr_page import ovr_section  # here, not at the top: ovr_page imports this module

    lines = intro()
    for id_set in ID_SETS:
        lines += id_section(id_set)
    lines += ovr_section()
    PAGE.write_text("\n".join(lines))
    print(f"wrote {PAGE}")
