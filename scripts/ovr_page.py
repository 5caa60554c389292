"""The results page's one-vs-rest section, computed from the records that ``scripts/results.py
ovr`` writes (``docs/results/one-vs-rest/<id>-s<seed>.jsonl``; see ``one_vs_rest.py``).

Two matrices, test AUROC and test FPR95 (ID+): a row per ID set, a column per dataset. Each
row is its runs' last round under one score, the one with the best validation mean AUROC over
the row's seeds (``page.val_best_mean``; never chosen on test). A cell is the mean ± std over
the row's seeds; "–" is the ID set itself or a set its runs did not have. Each row also gives
its preset (and whether that was tuned for it), its seeds, its ID test accuracy, and its near-
and far-OOD means (``netinv.metrics.OOD_GROUPS``). The seed project's MNIST numbers
(``page.SEED_PROJECT``) are the row under MNIST.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from experiments import LABELS
from one_vs_rest import OVR_DIR, OVR_SETS, load_ovr
from page import SEED_PROJECT, config_note, pct, pm, val_best_mean

from netinv.metrics import GROUPS, group_means

OVR_CMD = ("`OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py ovr --data-root "
           "../shared/data`")
PAGE_CMD = "`.venv/bin/python scripts/results.py page`"
METRICS = {"auroc": "AUROC", "fpr95": "FPR95 (ID+)"}  # metric -> its matrix's title
SEED_ROW = "seed project (MNIST, UE)"


def ood_values(records: list[dict[str, Any]], ood: str, score: str, metric: str
               ) -> list[float]:
    """The test ``metric`` of ``ood`` under ``score``, one per record that has that set."""
    return [row[metric] for record in records for row in record["ood"]
            if (row["ood_set"], row["score"], row["split"]) == (ood, score, "test")]


def matrix_row(id_set: str, runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """One ID set's row: its runs' last records, the score chosen on validation, and
    ``values[metric][ood]`` = that metric per seed (sets the runs lacked are left out)."""
    last = [records[-1] for records in runs]
    score = val_best_mean(last)
    values = {metric: {ood: ood_values(last, ood, score, metric) for ood in OVR_SETS
                       if ood != id_set} for metric in METRICS}
    return {"records": last, "score": score,
            "values": {m: {o: v for o, v in per.items() if v} for m, per in values.items()}}


def cell_text(values: list[float], seeds: int) -> str:
    """Mean ± std over seeds, "(k of n seeds)" when some seeds lack the set, "–" when all do."""
    if not values:
        return "–"
    return pm(values) + ("" if len(values) == seeds else f" ({len(values)} of {seeds} seeds)")


def group_cells(id_set: str, means: dict[str, float]) -> list[str]:
    """The near- and far-OOD means of ``means`` (OOD set -> value), "–" for an empty group."""
    groups = group_means(id_set, means)
    return [f"{groups[g]:.4f}" if groups[g] is not None else "–" for g in GROUPS]


def seed_cells(metric: str, sets: list[str]) -> list[str]:
    """The seed project's row: its value per column, then its near/far means over ``sets``."""
    i = list(METRICS).index(metric)  # SEED_PROJECT holds (AUROC, FPR95)
    cells = [f"{SEED_PROJECT[o][i]:.4f}" if o in SEED_PROJECT else "–" for o in OVR_SETS]
    return cells + group_cells("mnist", {o: SEED_PROJECT[o][i] for o in sets
                                         if o in SEED_PROJECT})


def matrix(metric: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """One metric's matrix (AUROC with the rows' preset, seeds and accuracy; FPR95 without)."""
    full = metric == "auroc"
    lead = ["ID set", "preset", "score", "seeds", "ID test acc"] if full else ["ID set", "score"]
    titles = lead + [LABELS[o] for o in OVR_SETS] + ["near", "far"]
    out = [f"### {METRICS[metric]}, test", "", "| " + " | ".join(titles) + " |",
           "|" + "---|" * len(titles)]
    seed_sets = list(SEED_PROJECT)  # the seed row's group means: over our MNIST row's sets
    for id_set, row in rows.items():
        records = row["records"]
        seeds = [r["config"]["rounds/seed"] for r in records]
        means = {o: statistics.mean(v) for o, v in row["values"][metric].items()}
        cells = [LABELS[id_set]]
        if full:
            tuned = "" if records[0]["preset_tuned"] else " (untuned)"
            rounds = records[0]["round"]
            cells += [f"`{records[0]['preset']}`{tuned}, {rounds} round{'s' * (rounds != 1)}",
                      row["score"], ", ".join(map(str, seeds)),
                      pct([r["id_test_accuracy"] for r in records])]
        else:
            cells.append(row["score"])
        cells += ["–" if o == id_set else cell_text(row["values"][metric].get(o, []),
                                                    len(records)) for o in OVR_SETS]
        out.append("| " + " | ".join(cells + group_cells(id_set, means)) + " |")
        if id_set == "mnist":
            seed_sets = list(means)
            out.append(seed_row(metric, seed_sets, full))
    if "mnist" not in rows:
        out.append(seed_row(metric, seed_sets, full))
    return out + [""]


def seed_row(metric: str, sets: list[str], full: bool) -> str:
    """The seed project's line of a matrix."""
    lead = [SEED_ROW, "–", "ue", "–", "–"] if full else [SEED_ROW, "ue"]
    return "| " + " | ".join(lead + seed_cells(metric, sets)) + " |"


def notes(runs: dict[str, list[list[dict[str, Any]]]]) -> list[str]:
    """Untuned presets, ``--set`` overrides, ID sets whose seeds ran different configs, ID sets
    not run, and the runs' compute."""
    out = []
    ran = [id_set for id_set in OVR_SETS if id_set in runs]
    untuned = [id_set for id_set in ran if not runs[id_set][0][0]["preset_tuned"]]
    if untuned:
        presets = sorted({runs[i][0][0]["preset"] for i in untuned})
        out.append(f"Untuned: {', '.join(LABELS[i] for i in untuned)} as ID ran preset "
                   f"{', '.join(f'`{p}`' for p in presets)} with only `data/id` and "
                   "`data/ood` changed; no study chose settings for them.")
    changed: dict[str, list[str]] = {}  # the --set overrides -> the ID sets run with them
    for id_set in ran:
        for text in sorted({", ".join(f"{k}={v}" for k, v in r[0]["overrides"].items())
                            for r in runs[id_set]} - {""}):
            changed.setdefault(text, []).append(LABELS[id_set])
    if changed:
        out.append("Not the presets' full runs: " + "; ".join(
            f"{'every row' if len(ids) == len(ran) else ', '.join(ids)} ran with `--set` "
            f"{text}" for text, ids in changed.items()) + ".")
    for id_set in ran:  # a row averages its seeds: say when they did not run one config
        differences = config_note([recs[-1] for recs in runs[id_set]])
        if differences:
            out.append(f"{LABELS[id_set]} as ID: not one config over its seeds{differences}. "
                       f"`ovr --only {id_set} --seeds N --overwrite` redoes seed N, reusing "
                       "the results page's preset run of that seed only if it ran today's "
                       f"config: redo that first (`results.py run {id_set} --only "
                       "preset-sN`), or ovr trains it again.")
    reused = [LABELS[i] for i in ran if all("reused_from" in r[0] for r in runs[i])]
    if reused:
        out.append(f"{', '.join(reused)}: the same config as the ID set's preset runs above "
                   "(its OOD sets are all the other present sets), so their records are reused "
                   "(`docs/results/<id>/preset-s<seed>.jsonl`), not computed again.")
    missing = [o for o in OVR_SETS if o not in runs]
    if missing:
        hint = ("; SVHN and CIFAR-100 come with `--download svhn,cifar100`"
                if {"svhn", "cifar100"} & set(missing) else "")
        out.append(f"Not run as ID: {', '.join(LABELS[o] for o in missing)} (no records: "
                   "their train split was not under the data root when `ovr` ran, or `--only` "
                   f"left them out{hint}).")
    every = [recs[-1] for per in runs.values() for recs in per]
    cpus = sorted({r["machine"]["cpu"] for r in every})
    threads = sorted({r["machine"]["torch_threads"] for r in every})
    out.append(f"Compute: {len(every)} runs, {sum(r['run_wall_s'] for r in every) / 60:.1f} "
               f"min of wall time on {', '.join(cpus)} ({'/'.join(map(str, threads))} torch "
               "threads).")
    return [" ".join(out), ""]


def ovr_section(folder: Path = OVR_DIR) -> list[str]:
    """The page's one-vs-rest section from ``folder``'s records; how to make them if none."""
    out = ["## One-vs-rest: each dataset as ID, every other present dataset as OOD", ""]
    runs = load_ovr(folder)
    if not runs:
        return out + [f"Not run yet: {OVR_CMD} runs every dataset whose training data is "
                      "present as ID with its preset (seeds 0, 1, 2), against all the others "
                      f"as OOD; then {PAGE_CMD}.", ""]
    rows = {id_set: matrix_row(id_set, runs[id_set]) for id_set in OVR_SETS if id_set in runs}
    out += ["The seed project's protocol: each dataset whose training data is present is the "
            "ID set in turn, trained with its preset for all its rounds; every other dataset "
            "present is OOD. Test splits, each run's last round. A row's score is the one "
            "with the best validation mean AUROC over its seeds (never chosen on test). "
            "Cells: mean ± std over the row's seeds; – is the ID set itself or a set that was "
            "not present. Near/far: means over the row's sets in each group "
            "(`netinv.metrics.OOD_GROUPS`, OpenOOD v1.5's grouping where it has the "
            f"benchmark). The *{SEED_ROW}* row is the seed's course project (test, score UE; "
            "its CIFAR-10 is the original, ours the JPEG copy), its near/far means over the "
            f"sets of our MNIST row. Reproduce: {OVR_CMD} (resumes: finished (ID, seed) files "
            f"are kept), then {PAGE_CMD}.", ""]
    for metric in METRICS:
        out += matrix(metric, rows)
    return out + notes(runs)
