"""The study tests' shared real study folder, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.study_folder import STUDY, Built, build_study


@pytest.fixture(scope="session")
def study_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A real small study folder (``tests.helpers.study_folder``); tests must not change it
    (damage a :func:`~tests.helpers.study_folder.copy_study` instead)."""
    return build_study(tmp_path_factory.mktemp("storage") / STUDY, data_root)
