"""A real small study folder, as the trainable writes one: real pipelines, Parquet, journal.

Two tiny real runs are written with study.results' writers as completed trials, plus a trial
stopped early (after round 0), a failed one and a running one. The objective score's AUROC rows
are set by hand so that the val-best trial (A, best at round 0) differs from the test-best trial
(B): an analysis must pick A. No Ray: the rows are what ``study.trainable`` would write.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from netinv.config import Config
from netinv.pipeline import RunResult, run_rounds
from netinv.records import mean_metric
from netinv.state import RoundState
from netinv.plots import save_grid
from study import layout
from study import results as R

TINY = {"data/train_limit": 2000, "data/test_limit": 500, "data/id_val_size": 500,
        "inversion/steps": 20, "rounds/count": 1, "classifier/width": 8,
        "inversion/samples_per_round": 200, "garbage/noise_count": 200}
STUDY = "tiny-study"
SCORE = "ue_tiered"
# trial -> searched params, and the (val, test) AUROC of SCORE per round, set by hand
TRIALS: dict[str, dict[str, Any]] = {
    "A": {"params": {"inversion/alpha_kl": 0.5, "inversion/gamma_cosine": 0.05},
          "auroc": [(0.99, 0.30), (0.50, 0.95)]},  # val-best, at round 0
    "B": {"params": {"inversion/alpha_kl": 2.0, "inversion/gamma_cosine": 0.2},
          "auroc": [(0.60, 0.40), (0.90, 0.999)]},  # test-best
}


@dataclass
class Built:
    """The study folder and, per real trial, its run and every round's state."""

    folder: str
    runs: dict[str, RunResult]
    states: dict[str, list[RoundState]]


def set_auroc(record: dict[str, Any], val: float, test: float) -> dict[str, Any]:
    """A copy of ``record`` whose SCORE AUROC rows read ``val`` and ``test``."""
    record = copy.deepcopy(record)
    for row in record["ood"]:
        if row["score"] == SCORE:
            row["auroc"] = val if row["split"] == "val" else test
    return record


def write_trial(study_dir: str, study: optuna.Study, trial_id: str, params: dict[str, Any],
                result: RunResult | None, records: list[dict[str, Any]], status: str,
                **row: Any) -> None:
    """One trial as the trainable writes it: round rows, artifacts, trial row, Optuna trial."""
    config = Config.from_flat({**TINY, **params, **(result.state.config if result else {})})
    objectives = [mean_metric(rec, score=SCORE, metric="auroc", split="val") for rec in records]
    for record, objective in zip(records, objectives):
        R.write_round(study_dir, study=STUDY, trial_id=trial_id, record=record,
                      objective=objective)
    if result is not None:
        artifacts = Path(layout.artifact_uri(study_dir, trial_id, ""))
        artifacts.mkdir(parents=True, exist_ok=True)
        result.state.save(artifacts / "state.pt")
        save_grid(result.state.grid, result.data.classes, artifacts / "grid-round-1.png")
    study.enqueue_trial(params)
    trial = study.ask()
    for name in params:
        trial.suggest_float(name, 0.0, 10.0)
    best = max(objectives) if objectives else None
    if status in (R.COMPLETED, R.STOPPED):  # a trial stopped by ASHA is COMPLETE in Optuna
        study.tell(trial, best)
    elif status == R.FAILED:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    R.write_trial(study_dir, {
        R.STUDY: STUDY, R.TRIAL_ID: trial_id, "optuna_number": trial.number, "status": status,
        "seed": 0, "rounds_done": len(records) - 1 if records else None, "attempts": 1,
        "objective_name": f"{SCORE}:auroc", R.OBJECTIVE: best,
        "best_round": objectives.index(best) if objectives else None,
        "searched_params": json.dumps(params), **R.config_row(config), **row})


def build_study(folder: Path, data_root: Path) -> Built:
    """Write the study described in the module docstring into ``folder`` (created)."""
    folder.mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend(str(folder / layout.JOURNAL_FILE)))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    (folder / layout.STUDY_FILE).write_text(json.dumps(
        {"name": STUDY, "objective": f"{SCORE}:auroc", "mode": "max"}))
    base = {**TINY, "data/root": str(data_root), "data/download": False}
    data, results, round_states = None, {}, {}
    for trial_id, spec in TRIALS.items():
        config = Config.from_flat({**base, **spec["params"]})
        states: list[RoundState] = []
        result = run_rounds(config, data=data, on_round=lambda record, st: states.append(st))
        round_states[trial_id] = states
        data = result.data
        records = [set_auroc(rec, *auroc) for rec, auroc in zip(result.records, spec["auroc"])]
        write_trial(str(folder), study, trial_id, spec["params"], result, records,
                    R.COMPLETED, wall_s=10.0)
        results[trial_id] = result
    stopped = [set_auroc(results["B"].records[0], 0.80, 0.80)]
    write_trial(str(folder), study, "C", {"inversion/alpha_kl": 1.0,
                                          "inversion/gamma_cosine": 0.0}, None, stopped,
                R.STOPPED, wall_s=3.0)
    write_trial(str(folder), study, "D-failed", {"inversion/alpha_kl": 9.0}, None, [],
                R.FAILED, failure_reason="NonFiniteLossError: classifier loss became nan")
    running = [set_auroc(results["A"].records[0], 0.85, 0.85)]
    write_trial(str(folder), study, "E-running", {"inversion/alpha_kl": 3.0}, None, running,
                R.RUNNING)
    return Built(str(folder), results, round_states)


def copy_study(built: Built, into: Path) -> Path:
    """A copy of the built study folder (without its report) at ``into/<study>``, to damage."""
    target = into / STUDY
    shutil.copytree(built.folder, target, ignore=shutil.ignore_patterns("report"))
    return target
