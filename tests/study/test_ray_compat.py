"""study.ray_compat: the Ray private names the study layer relies on still work (Ray 2.60.0).

A Ray upgrade that renames one of them fails here, by name, rather than deep inside a study.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from ray import tune

from study import ray_compat, search
from study.trainable import StudyCallback
from study.search import StudySearch

REPO = Path(__file__).resolve().parents[2]


def test_prepare_and_validate_merges_defaults_and_leaves_its_input() -> None:
    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    before = yaml.safe_dump(raw)
    config = ray_compat.prepare_and_validate(raw)
    assert yaml.safe_dump(raw) == before
    assert "max_workers" in config["available_node_types"]["head"]  # filled in by Ray
    assert config["head_setup_commands"][0] == config["setup_commands"][0]  # merged


def test_searcher_accessors_see_the_optuna_study_and_trials(tmp_path: Path) -> None:
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    searcher = StudySearch(space=fn, metric="objective", mode="max",
                           sampler=optuna.samplers.RandomSampler(seed=0), study_name="s")
    assert ray_compat.optuna_trial(searcher, "t0") is None
    config = searcher.suggest("t0")
    trial = ray_compat.optuna_trial(searcher, "t0")
    assert trial.number == config["study"]["optuna_number"] == 0
    assert ray_compat.optuna_trials(searcher) == {"t0": trial}
    assert ray_compat.optuna_study(searcher).study_name == "s"
    assert not ray_compat.is_told(searcher, "t0")
    searcher.on_trial_complete("t0", result={"objective": 0.5})
    assert ray_compat.is_told(searcher, "t0")


def _trainable(config: dict) -> None:
    pass


def test_restored_parts_are_the_pickled_searcher_and_callbacks(tmp_path: Path) -> None:
    """Tuner.restore of a copied experiment brings back the searcher and callbacks that name
    the original folder: what the launcher points at the copy."""
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    searcher = StudySearch(space=fn, metric="objective", mode="max",
                           storage=search.make_storage(str(tmp_path / "a"), "a"), study_name="a")
    tune.Tuner(_trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=1),
               run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path / "a" / "ray"),
                                         callbacks=[StudyCallback(str(tmp_path / "a"), "a")]))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    restored = tune.Tuner.restore(str(tmp_path / "b" / "ray" / "exp"), trainable=_trainable)
    found, callbacks = ray_compat.restored_parts(restored)
    assert isinstance(found, StudySearch)
    assert ray_compat.optuna_study(found).study_name == "a"
    assert [c.study_dir for c in callbacks] == [str(tmp_path / "a")]


def test_add_callback_reaches_the_arguments_a_restored_fit_runs_with(tmp_path: Path) -> None:
    tune.Tuner(_trainable, tune_config=tune.TuneConfig(num_samples=1),
               run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path / "ray"),
                                         callbacks=[StudyCallback(str(tmp_path), "a")]))
    restored = tune.Tuner.restore(str(tmp_path / "ray" / "exp"), trainable=_trainable)
    added = StudyCallback(str(tmp_path), "added")
    ray_compat.add_callback(restored, added)
    assert [c.study for c in ray_compat.restored_parts(restored)[1]] == ["a", "added"]
    arguments = restored._local_tuner._get_tune_run_arguments(_trainable)
    assert added in arguments["callbacks"]


def test_restored_parts_refuses_a_ray_client_tuner() -> None:
    with pytest.raises(ValueError, match=r"only by a driver on the cluster"):
        ray_compat.restored_parts(SimpleNamespace(_remote_tuner=object()))


def test_rehome_search_state_points_new_trials_at_the_copy(tmp_path: Path) -> None:
    """The saved search state of a copied run names the original folder until rehomed; the
    trials Tune adds after a resume are made from it."""
    from ray.tune.experiment import Experiment
    from ray.tune.search.search_generator import SearchGenerator

    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    searcher = StudySearch(space=fn, metric="objective", mode="max", study_name="a",
                           storage=search.make_storage(str(tmp_path / "a"), "a"))
    generator = SearchGenerator(searcher)
    generator.add_configurations([Experiment("exp", _trainable,
                                             storage_path=str(tmp_path / "a" / "ray"))])
    (tmp_path / "a" / "ray" / "exp").mkdir(parents=True, exist_ok=True)
    generator.save_to_dir(str(tmp_path / "a" / "ray" / "exp"), session_str="s")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    original = (tmp_path / "a" / "ray" / "exp" / "search_gen_state-s.json").read_bytes()

    assert ray_compat.rehome_search_state(str(tmp_path / "b" / "ray" / "exp")) == 1
    restored = SearchGenerator(_searcher_like(tmp_path))
    restored.restore_from_dir(str(tmp_path / "b" / "ray" / "exp"))
    storage = restored._experiment.spec["storage"]
    assert storage.experiment_fs_path == str(tmp_path / "b" / "ray" / "exp")
    assert (tmp_path / "a" / "ray" / "exp" / "search_gen_state-s.json").read_bytes() == original
    assert ray_compat.rehome_search_state(str(tmp_path / "a")) == 0  # a run that saved none


def _searcher_like(tmp_path: Path) -> StudySearch:
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    return StudySearch(space=fn, metric="objective", mode="max", study_name="a",
                       storage=search.make_storage(str(tmp_path / "b"), "a"))
