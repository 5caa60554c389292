"""study.options: option parsing and checks, the preset/space/option layering; no Ray."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from study import layout, options, ray_compat
from study.search import StudySearch


def test_preset_is_the_base_under_suggestions_and_options(tmp_path: Path) -> None:
    """A trial's config: space constants < --preset < the space's suggestions < options."""
    opts = options.parse_options(["--storage", str(tmp_path), "--space", "quick",
                                  "--preset", "fashionmnist", "--gpus-per-trial", "0",
                                  "--ood", "mnist,cifar10"])
    fn, fixed, samples = options.check_space(opts)
    preset = options.preset_settings(opts)
    for sample in samples:
        assert sample["data/id"] == "fashionmnist"  # preset over the space's constant
        assert sample["classifier/width"] == preset["classifier/width"]
        assert sample["data/ood"] == ["mnist", "cifar10"]  # the option over the preset
        assert 1 <= sample["rounds/count"] <= 2  # the suggestion over the preset
    searcher = StudySearch(space=fn, metric="objective", mode="max",
                           sampler=optuna.samplers.RandomSampler(seed=0),
                           study_name="unit", fixed_keys=tuple(fixed),
                           base_keys=tuple(preset))
    config = searcher.suggest("t0")
    assert "id" not in config["data"] and "width" not in config["classifier"]
    assert config["rounds"]["count"] in (1, 2)
    assert ray_compat.optuna_trial(searcher, "t0").params["rounds/count"] in (1, 2)


def _launched(tmp_path: Path, name: str, **saved_options: object) -> Path:
    """A study folder whose study.json records one launch of ``name`` under tmp_path/orig."""
    opts = options.parse_options(["--storage", str(tmp_path / "orig"), "--name", name,
                                  "--space", "quick", "--gpus-per-trial", "0", "--seed", "4"])
    recorded = {**vars(opts), **saved_options}
    study_dir = tmp_path / "copies" / name
    layout.write_study_file(str(study_dir), {"name": name, "options": recorded,
                                             "launches": [{"options": recorded}]})
    return study_dir


def test_resume_is_keyed_by_the_given_name_and_storage(tmp_path: Path) -> None:
    """The folder --storage/--name names is the study, whatever its study.json says."""
    _launched(tmp_path, "first")
    (tmp_path / "copies" / "first").rename(tmp_path / "copies" / "renamed")
    opts = options.parse_options(["--storage", str(tmp_path / "copies"), "--name", "renamed",
                                  "--resume"])
    assert opts.resume and opts.name == "renamed"
    assert opts.study_dir == str(tmp_path / "copies" / "renamed")
    assert opts.storage == str(tmp_path / "copies")
    assert (opts.space, opts.seed, opts.gpus_per_trial) == ("quick", 4, 0.0)  # the saved ones


@pytest.mark.parametrize("options_value, match", [
    ("not a dict", r"must hold the launch options .* under 'options', got str"),
    ({"space": "quick"}, r"must hold the launch options .*asha.*, got \['space'\]"),
])
def test_resume_refuses_a_study_json_without_options(tmp_path: Path, options_value: object,
                                                     match: str) -> None:
    layout.write_study_file(str(tmp_path / "s"), {"name": "s", "options": options_value})
    with pytest.raises(options.LaunchError, match=match):
        options.parse_options(["--storage", str(tmp_path), "--name", "s", "--resume"])


def test_resume_refuses_unknown_saved_options(tmp_path: Path) -> None:
    study_dir = _launched(tmp_path, "s", extra_option=1)
    before = (study_dir / layout.STUDY_FILE).read_bytes()
    with pytest.raises(options.LaunchError, match=r"must hold the launch options"):
        options.parse_options(["--storage", str(study_dir.parent), "--name", "s", "--resume"])
    assert (study_dir / layout.STUDY_FILE).read_bytes() == before


def test_folder_datasets_are_made_absolute_for_every_trial(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials run in other working directories: a relative folder: path is resolved here."""
    monkeypatch.chdir(tmp_path)
    opts = options.parse_options(["--storage", str(tmp_path), "--space", "quick",
                                  "--gpus-per-trial", "0", "--id", "folder:parts",
                                  "--ood", "folder:~/scratches,tinyimagenet"])
    fixed = options.fixed_settings(opts)
    assert fixed["data/id"] == f"folder:{tmp_path / 'parts'}"
    assert fixed["data/ood"] == [f"folder:{Path.home() / 'scratches'}", "tinyimagenet"]


def test_a_fitted_objective_needs_fitted_scores_in_every_trial(tmp_path: Path) -> None:
    argv = ["--storage", str(tmp_path), "--space", "quick", "--gpus-per-trial", "0",
            "--objective", "fused:auroc"]
    with pytest.raises(options.LaunchError, match=r"--objective fused:auroc needs "
                                                  r"rounds/fitted_scores true in every trial"):
        options.check_space(options.parse_options(argv))
    space = tmp_path / "fitted_space.py"
    space.write_text("def space(trial):\n"
                     "    trial.suggest_int('rounds/count', 1, 2)\n"
                     "    return {'rounds/fitted_scores': True}\n")
    _, _, samples = options.check_space(options.parse_options(
        [*argv[:3], str(space), *argv[4:]]))
    assert all(sample["rounds/fitted_scores"] for sample in samples)
