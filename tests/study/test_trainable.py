"""study.trainable, driver side: the callback that writes each trial's final status."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from study import results as R
from study.trainable import StudyCallback


def test_callback_writes_stopped_and_completed(tmp_path: Path) -> None:
    study_dir = str(tmp_path / "s")
    callback = StudyCallback(study_dir, "s")
    for trial_id, done in (("a", 1), ("b", 3)):
        R.write_trial(study_dir, {R.STUDY: "s", R.TRIAL_ID: trial_id, "status": R.RUNNING})
        trial = SimpleNamespace(trial_id=trial_id, config={},
                                last_result={"round": done, "rounds_total": 3})
        callback.on_trial_complete(0, [], trial)
    trials = R.read_table(study_dir, "trials").set_index(R.TRIAL_ID)["status"]
    assert trials.to_dict() == {"a": R.STOPPED, "b": R.COMPLETED}
