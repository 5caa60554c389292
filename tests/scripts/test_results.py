"""scripts/results.py: bad input is one ``error:`` line with exit code 2, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.scripts import load

results = load("results")


@pytest.mark.parametrize("argv, named", [
    (["study", "mnist", "--study-dir", "MISSING"], "MISSING"),
    (["study", "mnist"], "--study-dir"),
    (["run"], "needs an ID set"),
])
def test_bad_input_is_one_error_line(argv: list[str], named: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    argv = [str(tmp_path / a) if a == "MISSING" else a for a in argv]
    assert results.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert (str(tmp_path / named) if named == "MISSING" else named) in err


def test_an_empty_study_folder_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    assert results.main(["study", "fashionmnist", "--study-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the study folder must hold results") and str(tmp_path) in err
