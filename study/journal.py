"""What a study's Optuna journal says: its trials' states and values, parameter importances,
and whether its last line was cut off.

The journal is ``<study>/optuna.journal`` (:mod:`study.layout`), one JSON operation per line,
written by Optuna's ``JournalFileBackend``. A line cut off by a crash or a partial copy is
skipped by Optuna 5 without a word (the trial it would have finished stays RUNNING), so
:func:`truncated_tail` looks for one before anything trusts the journal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study import layout
from study import results as R

if TYPE_CHECKING:
    import optuna

IMPORTANCE_MIN_TRIALS = 2  # completed Optuna trials fANOVA needs at the very least
TAIL_BYTES = 1 << 20  # bytes read from the journal's end to find its last line


def journal_path(study_dir: str) -> Path:
    """The study's local Optuna journal file (it may not exist)."""
    return Path(study_dir) / layout.JOURNAL_FILE


def truncated_tail(path: str | Path) -> str | None:
    """Why the journal's last line is incomplete, or None when it ends with a whole line.

    A complete journal ends with a newline and its last line parses as JSON.
    """
    path = Path(path)
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.read()
    if not tail:
        return None
    if not tail.endswith(b"\n"):
        last = tail.rsplit(b"\n", 1)[-1]
        return f"its last line ({len(last)} bytes) has no newline: it was cut off"
    last = tail[:-1].rsplit(b"\n", 1)[-1]
    try:
        json.loads(last)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"its last line ({len(last)} bytes) is not valid JSON"
    return None


def load_study(study_dir: str, study_json: dict[str, Any]
               ) -> tuple[optuna.Study | None, str]:
    """The Optuna study in the study folder's journal, and its name; or None and why not.

    The study is the one named by study.json's ``name`` (the launch's ``--name``), else the
    folder's name, else the journal's only study.
    """
    path = journal_path(study_dir)
    if not path.is_file():
        return None, f"no Optuna journal at `{path}`"
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    names = optuna.get_all_study_names(storage)
    if not names:
        return None, "the Optuna journal holds no study yet"
    wanted = study_json.get("name") or Path(study_dir).name
    name = wanted if wanted in names else names[0]
    return optuna.load_study(study_name=name, storage=storage), name


def objective_index(study: optuna.Study) -> int:
    """Which of a trial's values is the objective: 0, or its place in a multi-objective
    study's metric names (nsga2 studies tell ID val accuracy and the objective)."""
    if len(study.directions) == 1:
        return 0
    names = study.metric_names or []
    return names.index(R.OBJECTIVE) if R.OBJECTIVE in names else len(study.directions) - 1


def trial_outcomes(study: optuna.Study) -> dict[int, tuple[str, float | None]]:
    """Optuna trial number -> (state name, objective value or None)."""
    index = objective_index(study)
    return {t.number: (t.state.name, t.values[index] if t.values else None)
            for t in study.get_trials(deepcopy=False)}


def param_importances(study_dir: str, study_json: dict[str, Any]
                      ) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances from the study's Optuna journal, or None and the reason why not."""
    study, name = load_study(study_dir, study_json)
    if study is None:
        return None, f"{name}: importance needs it."
    import optuna

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < IMPORTANCE_MIN_TRIALS:
        return None, (f"parameter importance needs at least {IMPORTANCE_MIN_TRIALS} completed "
                      f"Optuna trials; the study has {len(completed)}.")
    target, about = None, ""
    if len(study.directions) > 1:
        index = objective_index(study)
        target = lambda t: t.values[index]  # noqa: E731
        about = " (a multi-objective study: importance for the objective, not ID accuracy)"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator,
                                                         target=target)
    except (RuntimeError, ValueError) as err:
        return None, f"Optuna could not compute importances: {err}"
    if not values:
        return None, "the completed trials share no searched parameter."
    return dict(values), (f"fANOVA over {len(completed)} completed trials of Optuna study "
                          f"`{name}`{about}.")
