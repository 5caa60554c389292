"""tests.helpers.data: tests that need the real data say so in one line when it is missing,
failing in CI and skipping elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import DEFAULT_DATA, in_ci, real_data_root, require_data


def test_missing_data_fails_in_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception,
                       match=r"found none at .*: set NETINV_DATA to .*CI=true"):
        require_data(tmp_path, {"CI": "true"})


@pytest.mark.parametrize("ci", ["", "0", "false"])
def test_missing_data_skips_outside_ci(tmp_path: Path, ci: str) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"set NETINV_DATA"):
        require_data(tmp_path, {"CI": ci})


def test_present_data_is_returned(tmp_path: Path) -> None:
    (tmp_path / "MNIST").mkdir()
    assert require_data(tmp_path, {"CI": "true"}) == tmp_path


def test_root_comes_from_netinv_data_else_beside_the_checkout(tmp_path: Path) -> None:
    assert real_data_root({"NETINV_DATA": str(tmp_path)}) == tmp_path
    assert real_data_root({}) == DEFAULT_DATA
    assert in_ci({"CI": "1"}) and not in_ci({})
