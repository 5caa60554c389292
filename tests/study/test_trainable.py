"""study.trainable, driver side: the callback that writes each trial's final status; a CUDA
trial's memory cap and peak reset (CUDA calls stubbed, so it runs on CPU)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from study import results as R
from study import trainable as T
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


def test_cuda_trial_caps_memory_and_resets_the_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(T, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, device: calls.append(("cap", fraction)))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device: calls.append(("reset", None)))
    threads = torch.get_num_threads()
    try:
        config = SimpleNamespace(rounds=SimpleNamespace(device="cuda"))
        T._set_threads_and_memory(config, 1.0, 0.25)
        T._set_threads_and_memory(config, 1.0, 1.0)
    finally:
        torch.set_num_threads(threads)
    assert calls == [("cap", 0.25), ("reset", None), ("reset", None)]
