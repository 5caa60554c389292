"""study.checks on damaged copies of a real small study folder: each damage is named."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from study import checks, layout
from study import results as R
from study.tables import load_trials
from tests.helpers.study_folder import Built, copy_study


def _check(folder: Path) -> checks.Findings:
    trials, rounds, ood = load_trials(str(folder))
    return checks.check_study(str(folder), layout.read_study_file(str(folder)) or {}, trials,
                              rounds, ood)


def test_a_whole_study_passes(study_dir: Built) -> None:
    found = _check(Path(study_dir.folder))
    assert found.incomplete == {} and found.notes == []


@pytest.mark.parametrize("damage, trial, problem", [
    ("results/rounds/A/round-0.parquet", "A", "rounds 0 have no rounds file"),
    ("results/ood/B/round-1.parquet", "B", "rounds 1 have no OOD rows"),
    ("results/trials/C.parquet", "C", "it has round files but no trial row"),
    ("results/rounds/E-running", "E-running", "rounds 0 have no rounds file"),
])
def test_each_missing_file_names_its_trial(damage: str, trial: str, problem: str,
                                           study_dir: Built, tmp_path: Path) -> None:
    folder = copy_study(study_dir, tmp_path)
    path = folder / damage
    if path.is_dir():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    found = _check(folder)
    assert list(found.incomplete) == [trial]
    assert any(problem in p for p in found.incomplete[trial]), found.incomplete


def _ood_file_for(folder: Path, source: str, trial: str, round_index: int) -> None:
    """Round ``round_index``'s OOD file of trial ``source``, written as trial ``trial``'s."""
    rows = pq.read_table(layout.round_uri(str(folder), "ood", source, round_index)).to_pylist()
    R.write_rows(layout.round_uri(str(folder), "ood", trial, round_index),
                 [{**row, R.TRIAL_ID: trial} for row in rows], R.OOD_SCHEMA)


def test_ood_rows_without_a_rounds_row(study_dir: Built, tmp_path: Path) -> None:
    folder = copy_study(study_dir, tmp_path)
    _ood_file_for(folder, "B", "C", 1)  # C (stopped after round 0) never had a round 1
    _ood_file_for(folder, "B", "E-running", 1)  # E's round 1 in flight: OOD rows come first
    found = _check(folder)
    assert found.incomplete == {"C": ["rounds 1 have OOD rows but no rounds file "
                                      "(results/rounds/C/)"]}


def test_a_trial_row_that_disagrees_with_its_rounds(study_dir: Built, tmp_path: Path) -> None:
    folder = copy_study(study_dir, tmp_path)
    row = R.read_trial(str(folder), "B")
    R.write_trial(str(folder), {**row, R.OBJECTIVE: 0.95})  # its round 1 holds 0.90
    found = _check(folder)
    assert found.incomplete["B"] == ["its trial row's best objective 0.95 (round 1) differs "
                                     "from round 1's file (0.9)"]
    assert found.notes == ["trial B: the Optuna journal's value 0.9 (trial 1) differs from the "
                           "trial row's best objective 0.95."]


def test_a_journal_cut_inside_a_tell(study_dir: Built, tmp_path: Path) -> None:
    folder = copy_study(study_dir, tmp_path)
    journal = folder / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    completes = [i for i, line in enumerate(lines)  # op 6 = set state; state 1 = COMPLETE
                 if re.search(rb'"op_code": ?6,', line) and re.search(rb'"state": ?1,', line)]
    cut = completes[2]  # C's tell (A, B, C are told in that order)
    journal.write_bytes(b"".join(lines[:cut]) + lines[cut][:30])
    found = _check(folder)
    assert found.incomplete == {}
    assert "is truncated" in found.notes[0]
    assert "trial C is stopped in its trial row but RUNNING in the Optuna journal (trial 2)." \
        in found.notes
    assert "trial D-failed: the Optuna journal has no trial 3." in found.notes


def test_ranges() -> None:
    assert checks._ranges({0, 1, 2, 5, 7, 8}) == "0-2, 5, 7-8"
    assert checks._ranges({3}) == "3"
