"""study.journal: importances from a real Optuna journal, and cut-off last lines."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from study import journal


def _study(tmp_path: Path, name: str, values: list[float]) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name=name, storage=storage)
    for value in values:
        study.enqueue_trial({"x": value})
        trial = study.ask()
        trial.suggest_float("x", 0.0, 2.0)
        study.tell(trial, value / 2)
    return study


def test_importance_needs_two_completed_trials(tmp_path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="one", storage=storage)
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 2.0)
    study.tell(trial, 0.5)
    values, note = journal.param_importances(str(tmp_path), {"name": "one"})
    assert values is None and "at least 2 completed" in note and "has 1" in note
    values, note = journal.param_importances(str(tmp_path / "none"), {})
    assert values is None and "no Optuna journal" in note


def _two_objective_study(tmp_path: Path, metric_names: list[str]) -> optuna.Study:
    """An NSGA-style study ("nsga", both maximised) in ``tmp_path``'s journal."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
    study = optuna.create_study(study_name="nsga", storage=storage,
                                directions=["maximize", "maximize"])
    study.set_metric_names(metric_names)
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_importance_of_a_multi_objective_study(tmp_path: Path) -> None:
    study = _two_objective_study(tmp_path, ["id_val_accuracy", "objective"])
    for x, y in ((0.1, 1.0), (0.5, 2.0), (0.9, 0.5), (0.3, 1.5)):
        study.enqueue_trial({"x": x, "y": y})
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, [0.9, trial.suggest_float("y", 0.0, 2.0)])
    values, note = journal.param_importances(str(tmp_path), {"name": "nsga"})
    assert values is not None and set(values) == {"x", "y"} and "multi-objective" in note
    assert values["y"] > values["x"]  # the objective is y alone


def test_a_whole_journal_has_no_truncated_tail(tmp_path: Path) -> None:
    _study(tmp_path, "s", [0.5, 1.5])
    assert journal.truncated_tail(tmp_path / "optuna.journal") is None


def test_a_cut_last_line_is_found_and_optuna_would_skip_it(tmp_path: Path) -> None:
    _study(tmp_path, "s", [0.5, 1.5])
    path = tmp_path / "optuna.journal"
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # inside the last tell
    assert "has no newline" in journal.truncated_tail(path)
    study, name = journal.load_study(str(tmp_path), {"name": "s"})
    outcomes = journal.trial_outcomes(study)
    assert name == "s" and outcomes[0] == ("COMPLETE", 0.25)
    assert outcomes[1] == ("RUNNING", None)  # Optuna dropped the cut line without a word


def test_a_garbled_last_line_is_found(tmp_path: Path) -> None:
    _study(tmp_path, "s", [0.5])
    path = tmp_path / "optuna.journal"
    path.write_bytes(path.read_bytes() + b'{"op_code": 6, "trial\n')
    assert "not valid JSON" in journal.truncated_tail(path)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_objective_index_of_a_multi_objective_study(tmp_path: Path) -> None:
    study = _two_objective_study(tmp_path, ["objective", "id_val_accuracy"])
    assert journal.objective_index(study) == 0
    study.enqueue_trial({"x": 0.5})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, [0.7, 0.9])
    assert journal.trial_outcomes(study) == {0: ("COMPLETE", 0.7)}
