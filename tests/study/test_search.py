"""study.search: the searcher's bookkeeping and its per-launch sampler seeds; no Ray cluster."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from study import ray_compat, search
from study.search import StudySearch


def test_searcher_fails_nan_and_keeps_asha_stopped_complete(tmp_path: Path) -> None:
    """Optuna: a NaN objective ends FAIL (not RUNNING); an ASHA-stopped trial is COMPLETE."""
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    searcher = StudySearch(space=fn, metric="objective", mode="max",
                           sampler=optuna.samplers.RandomSampler(seed=0),
                           study_name="unit", fixed_keys=("data/id", "rounds/seed"))
    config = searcher.suggest("t-nan")
    assert "id" not in config["data"]  # the launcher's fixed settings win over the space
    assert config["study"]["optuna_number"] == 0
    assert json.loads(config["study"]["searched_params"])["rounds/count"] in (1, 2)
    searcher.on_trial_complete("t-nan", result={"objective": math.nan, "round": 1,
                                                "rounds_total": 2})
    searcher.suggest("t-stop")
    searcher.on_trial_complete("t-stop", result={"objective": 0.7, "round": 1,
                                                 "rounds_total": 3})
    searcher.suggest("t-err")
    searcher.on_trial_complete("t-err", error=True)
    study = ray_compat.optuna_study(searcher)
    states = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert states["t-nan"].state == optuna.trial.TrialState.FAIL
    assert states["t-stop"].state == optuna.trial.TrialState.COMPLETE
    assert states["t-stop"].value == 0.7 and states["t-stop"].user_attrs["stopped_at_round"] == 1
    assert states["t-err"].state == optuna.trial.TrialState.FAIL


def test_sampler_seed_differs_per_launch_and_driver_and_is_reproducible() -> None:
    seeds = {search.sampler_seed(0, index, nonce) for index in range(20) for nonce in (1, 2)}
    assert len(seeds) == 40
    assert all(0 <= s <= 2**32 - 1 for s in seeds)
    assert search.sampler_seed(7, 3, 99) == search.sampler_seed(7, 3, 99)


def test_unknown_sampler_is_refused() -> None:
    with pytest.raises(search.LaunchError, match=r"--sampler must be one of tpe, .*got 'x'"):
        search.make_sampler("x", 0)


def _searcher(journal: Path) -> StudySearch:
    fn = __import__("search_spaces.quick", fromlist=["space"]).space
    return StudySearch(space=fn, metric="objective", mode="max",
                       sampler=optuna.samplers.RandomSampler(seed=0), study_name="s",
                       storage=search.make_storage(str(journal.parent), "s"))


def test_rebind_moves_running_trials_to_a_copied_journal(tmp_path: Path) -> None:
    """A searcher pointed at a copy of its journal tells the copy, not the original."""
    original = tmp_path / "a" / "optuna.journal"
    searcher = _searcher(original)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"objective": 0.5})
    searcher.suggest("t1")  # still running when the folder is copied
    copy = tmp_path / "b" / "optuna.journal"
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    before = original.read_bytes()
    searcher.rebind(search.make_storage(str(copy.parent), "s"))
    searcher.on_trial_complete("t1", result={"objective": 0.25})
    searcher.suggest("t2")
    assert original.read_bytes() == before
    moved = optuna.load_study(study_name="s", storage=search.make_storage(str(copy.parent), "s"))
    assert [t.state for t in moved.trials] == [optuna.trial.TrialState.COMPLETE] * 2 + [
        optuna.trial.TrialState.RUNNING]
    assert moved.trials[1].value == 0.25
    assert moved.trials[2].user_attrs["tune_trial_id"] == "t2"
