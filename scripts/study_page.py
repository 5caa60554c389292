"""The results page's study section: how an imported Ray Tune x Optuna study chose the preset.

Every statement is computed from the imported tables (``docs/results/<ID>/study-*.parquet``,
``study.json``) and the recheck runs, through the rule in ``selection.py``.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from typing import Any, Iterable

import pandas as pd
from experiments import RECHECK_SEEDS, RESULTS, study_file
from selection import (GOALS, MACHINE_KEYS, RECHECK_TOP, candidates, chosen_overrides,
                       rechecked, top_trials)

from netinv.config import Config
from netinv.presets import PRESETS, get_preset
from study.tables import max_concurrent

_LAUNCH = (".venv/bin/python -m study.launch --preset {id} --space refine --name {id}-refine "
           "--num-samples {n} --max-concurrent 2 --objective p_garbage:auroc --no-asha "
           "--data-root ../shared/data")
# how the studies imported before ``scripts/results.py study`` kept study.json were launched,
# keyed by study name (so another study imported under the same ID set never inherits them)
STUDY_COMMANDS = {
    "mnist-refine": f"`{_LAUNCH.format(id='mnist', n=8)}`",
    "fashionmnist-refine": f"`{_LAUNCH.format(id='fashionmnist', n=10)}`, then the same "
                           "command with `--num-samples 4` (trials 10-13)",
}


def run_cmd(cmd: str, id_set: str, records: Iterable[dict[str, Any]] = ()) -> str:
    """The ``scripts/results.py`` command line (markdown code) that reproduces ``records``:
    with the torch thread count they ran with (their ``machine``; 1 when none say), since
    float rounding, and so the records, depend on it."""
    threads = Counter(rec.get("machine", {}).get("torch_threads", 1) for rec in records)
    n = threads.most_common(1)[0][0] if threads else 1
    return (f"`OMP_NUM_THREADS={n} .venv/bin/python scripts/results.py {cmd} {id_set} "
            "--data-root ../shared/data`")


def launch_commands(id_set: str, study: str) -> str:
    """How the imported study was launched: from its study.json, else STUDY_COMMANDS."""
    path = RESULTS / id_set / "study.json"
    if path.exists():
        launches = json.loads(path.read_text()).get("launches", [])
        argv = [shlex.join(["python", "-m", "study.launch", *launch["argv"][1:]])
                for launch in launches if launch.get("argv")]
        if argv:
            return ", then ".join(f"`{a}`" for a in argv)
    return STUDY_COMMANDS.get(study, "a launch not recorded with the study")


def shared_settings(trials: pd.DataFrame) -> dict[str, Any]:
    """Config keys every trial shares and no trial searched: the study's fixed base, where it
    differs from the defaults (the ID and OOD sets always)."""
    configs = [json.loads(x) for x in trials["config_json"]]
    searched = set().union(*(json.loads(x or "{}") for x in trials["searched_params"]))
    defaults = Config().to_flat()
    return {k: v for k, v in configs[0].items()
            if k not in searched and k not in MACHINE_KEYS and all(c.get(k) == v for c in configs)
            and (v != defaults.get(k) or k in ("data/id", "data/ood"))}


def study_intro(id_set: str, trials: pd.DataFrame) -> list[str]:
    """What the imported study was: size, base, objective, launch, resources."""
    meta = trials.iloc[0]
    base = ", ".join(f"`{k}` {_short(v)}" for k, v in shared_settings(trials).items())
    devices = ", ".join(sorted(trials["device"].dropna().unique()))
    no_gpu = ", no GPU" if trials["gpus"].fillna(0).eq(0).all() else ""
    at_once = max_concurrent(trials["started_at"].dropna(), trials["ended_at"].dropna())
    return [f"Study `{meta['study']}`: {len(trials)} trials, each with its searched keys on "
            f"top of the settings all trials share ({base}); objective "
            f"`{meta['objective_name']}`; run with {launch_commands(id_set, meta['study'])} "
            f"(then `.venv/bin/python scripts/results.py study {id_set} --study-dir "
            f"studies/{meta['study']}`, which copies its Parquet tables to "
            f"`docs/results/{id_set}/study-*.parquet`). Device {devices}, "
            f"{trials['cpus'].iloc[0]:g} CPU per trial, at most {at_once} trials "
            f"at a time (from their start and end times); {cpu_hours(trials):.2f} CPU-hours in "
            f"all{no_gpu}.", ""]


def candidate_lines(table: pd.DataFrame) -> list[str]:
    """The rule, and each trial's best candidate under it."""
    out = ["Rule (validation only, `scripts/selection.py`): candidates are every trial's every "
           "round r >= 1 (= that config with `rounds/count = r`) and every score; first those "
           "meeting the most of the three goals on val, then the highest val mean AUROC, then "
           "the higher ID val accuracy, then fewer rounds. Each trial's best candidate:", "",
           "| trial | searched | status | round | score | ID val acc | val mean AUROC "
           "| val mean FPR95 | goals met (val) | wall (s) |", "|---" * 10 + "|"]
    best = table.groupby("trial_id", sort=False).head(1)
    for _, row in best.sort_values("optuna_number").iterrows():
        params = json.loads(row["searched_params"] or "{}")
        short = ", ".join(f"{k.split('/')[1]}={_short(v)}" for k, v in params.items())
        out.append(f"| {row['optuna_number']} | {short} | {row['status']} | "
                   f"{row['round']} | {row['score']} | {100 * row['id_val_accuracy']:.2f}% | "
                   f"{row['auroc']:.4f} | {row['fpr95']:.4f} | {row['goals_met']}/3 | "
                   f"{row['wall_s']:.0f} |")
    return out + [""]


def seed_check_lines(id_set: str, table: pd.DataFrame, checked: pd.DataFrame) -> list[str]:
    """The seed check of the top trials, what it changed, and the resulting preset."""
    chosen, first = checked.iloc[0], top_trials(table).iloc[0]
    first_row = checked[checked["trial_id"] == first["trial_id"]].iloc[0]
    seeds_text = ", ".join(map(str, RECHECK_SEEDS))
    if first["trial_id"] == chosen["trial_id"]:
        outcome = (f"It keeps the study's own pick, trial {first['optuna_number']} (val mean "
                   f"AUROC {first['auroc']:.4f} on seed 0, {first_row['auroc_mean']:.4f} over "
                   f"the seeds).")
    else:
        outcome = (f"It changes the study's own pick: trial {first['optuna_number']} scores val "
                   f"mean AUROC {first['auroc']:.4f} on seed 0 but "
                   f"{first_row['auroc_mean']:.4f} over the seeds, below trial "
                   f"{chosen['optuna_number']}'s {chosen['auroc_mean']:.4f}.")
    recheck_cmd = run_cmd("recheck", id_set)
    if all(len(seeds) <= 1 for seeds in checked["seeds"]):
        lead = (f"Seed check: not run (no re-run of the best trials with seeds {seeds_text} is "
                f"stored), so the pick below rests on seed 0 alone; run it with "
                f"{recheck_cmd}.")
    else:
        lead = (f"Seed check: the study's {RECHECK_TOP} best trials, each at its best "
                f"candidate, re-run with seeds {seeds_text} (each trial ran with seed 0 only, "
                f"so the best of many trials is partly the luckiest); the same rule on the "
                f"seed means picks the preset. {outcome} It looks at validation splits only. "
                f"Reproduce: {recheck_cmd}.")
    out = [lead, "",
           "| trial | round | score | val mean AUROC per seed | mean | mean FPR95 "
           "| mean ID val acc | goals met (means) |", "|---" * 8 + "|"]
    for _, row in checked.iterrows():
        mark = " **(preset)**" if row["trial_id"] == chosen["trial_id"] else ""
        per_seed = ", ".join(f"s{k}: {v:.4f}" for k, v in zip(row["seeds"],
                                                               row["auroc_by_seed"]))
        out.append(f"| {row['optuna_number']}{mark} | {row['round']} | {row['score']} | "
                   f"{per_seed} | {row['auroc_mean']:.4f} | {row['fpr95_mean']:.4f} | "
                   f"{100 * row['acc_mean']:.2f}% | {row['goals_met']}/3 |")
    overrides = chosen_overrides(chosen)
    if PRESETS.get(id_set) is None:
        verdict = f"`netinv/presets` has no preset `{id_set}`."
    elif get_preset(id_set) == overrides:
        verdict = f"`netinv/presets` ships exactly this as `{id_set}`."
    else:
        shipped = get_preset(id_set)
        differ = sorted(k for k in {*shipped, *overrides} if shipped.get(k) != overrides.get(k))
        verdict = (f"The shipped `{id_set}` preset is **not** this pick: it differs in "
                   f"{', '.join(f'`{k}`' for k in differ)} (the comment above it in "
                   f"`netinv/presets/__init__.py` says why); the tables above measure the "
                   f"shipped one.")
    return out + ["", f"The study's pick: trial {chosen['optuna_number']}'s config with "
                  f"`rounds/count = {chosen['round']}`: `{json.dumps(overrides)}`. {verdict}",
                  ""]


def study_section(id_set: str, runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """How the preset was chosen: the imported Ray study, every trial's best candidate."""
    out = ["### How the preset was chosen (Ray Tune x Optuna study, validation splits)", ""]
    if not study_file(id_set, "trials").exists():
        return out + ["No study imported yet: run one and `scripts/results.py study "
                      f"{id_set} --study-dir studies/<name>`.", ""]
    table = candidates(id_set)
    trials = pd.read_parquet(study_file(id_set, "trials"))
    checked = rechecked(table, runs, GOALS[id_set])
    return (out + study_intro(id_set, trials) + candidate_lines(table)
            + seed_check_lines(id_set, table, checked))


def cpu_hours(trials: pd.DataFrame) -> float:
    """A study's compute: the sum over trials of wall time x the trial's CPUs, in hours."""
    return float((trials["wall_s"].fillna(0) * trials["cpus"].fillna(1)).sum()) / 3600


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return f"{value:.3g}" if isinstance(value, float) else str(value)
