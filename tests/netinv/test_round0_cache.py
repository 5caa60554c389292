"""netinv.round0_cache: a cached round 0 equals a computed one, on real tiny MNIST runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from netinv.config import Config
from netinv.data import PreparedData, prepare
from netinv.pipeline import RunResult, run_rounds
from netinv.round0_cache import (CACHED, NOT_ROUND0_KEYS, NOT_ROUND0_SECTIONS, Round0Cache,
                                 round0_fields, round0_key)
from netinv.state import RoundState

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "data/train_limit": 600, "data/test_limit": 200, "data/id_val_size": 100,
    "data/ood": "fashionmnist", "classifier/width": 8, "classifier/batch_size": 32,
    "inversion/width": 8, "inversion/steps": 5, "inversion/batch_size": 16,
    "inversion/samples_per_round": 100, "garbage/noise_count": 100, "rounds/count": 1,
    "rounds/device": "cpu", "rounds/eval_batch_size": 256,
}
TIMES = ("time_invert_s", "time_exclude_s", "time_train_s", "time_eval_s", "time_round_s")
# round-0 fields changed to another allowed value: each must miss the cache
ROUND0_CHANGES = {
    "data/test_limit": 150, "data/id_val_size": 120, "data/ood": ["cifar10"],
    "classifier/lr": 1e-3, "classifier/epochs": 2, "classifier/shift": 1,
    "garbage/noise_count": 90, "garbage/noise_std": 0.5, "garbage/noise_max_scale": 2,
    "rounds/seed": 1, "rounds/amp": False, "rounds/eval_batch_size": 128,
    "classifier/arch": "resnet", "classifier/first_epochs": 2, "classifier/first_lr": 0.1,
    "classifier/optimizer": "sgd", "classifier/label_smoothing": 0.1, "classifier/flip": True,
}
# fields of later rounds only: each must hit it
OTHER_CHANGES = {
    "inversion/alpha_kl": 3.0, "inversion/steps": 7, "inversion/width": 16,
    "inversion/warm_start": False, "garbage/policy": "uncertain", "garbage/ue_threshold": 0.2,
    "garbage/pool_cap": 150, "garbage/confidence_threshold": 0.5,
    "classifier/reinit": True, "rounds/count": 2, "data/download": False,
}


@pytest.fixture(scope="module")
def tiny(data_root: Path) -> tuple[Config, PreparedData]:
    config = Config.from_flat({**TINY, "data/root": str(data_root)})
    dc = config.data
    data = prepare(dc.id, dc.ood, root=dc.root, id_val_size=dc.id_val_size,
                   train_limit=dc.train_limit, test_limit=dc.test_limit, seed=0)
    return config, data


def _without_times(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMES}


def _states_equal(a: RoundState, b: RoundState) -> bool:
    return (all(torch.equal(a.classifier[k], b.classifier[k]) for k in a.classifier)
            and torch.equal(a.garbage_pool, b.garbage_pool)
            and all(torch.equal(a.generator[k], b.generator[k]) for k in a.generator))


def test_every_config_key_is_in_the_key_or_listed_as_not() -> None:
    keys = set(Config.keys())
    assert set(NOT_ROUND0_KEYS) <= keys
    assert set(round0_fields(Config())) == {
        k for k in keys if k.partition("/")[0] not in NOT_ROUND0_SECTIONS
        and k not in NOT_ROUND0_KEYS}
    assert set(ROUND0_CHANGES) <= set(round0_fields(Config()))
    assert not set(OTHER_CHANGES) & set(round0_fields(Config()))


@pytest.mark.parametrize("key, value", sorted(ROUND0_CHANGES.items()))
def test_a_round0_field_changes_the_key(tiny, key: str, value: object) -> None:
    config, data = tiny
    other = Config.from_flat({key: value}, base=config)
    assert round0_key(other, data) != round0_key(config, data)


@pytest.mark.parametrize("key, value", sorted(OTHER_CHANGES.items()))
def test_a_later_round_field_keeps_the_key(tiny, key: str, value: object) -> None:
    config, data = tiny
    other = Config.from_flat({key: value}, base=config)
    assert round0_key(other, data) == round0_key(config, data)


def test_the_precision_in_use_changes_the_key(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    # bf16 autocast depends on the CPU (netinv.inference.bf16_pays), not only on rounds/amp
    config, data = tiny
    from netinv import inference
    keys = set()
    for bf16 in (False, True):
        monkeypatch.setattr(inference, "_cpu_bf16_pays", lambda bf16=bf16: bf16)
        keys.add(round0_key(config, data))
    assert len(keys) == 2


def test_other_data_changes_the_key(tiny, data_root: Path) -> None:
    config, data = tiny
    dc = config.data
    fewer = prepare(dc.id, dc.ood, root=dc.root, id_val_size=dc.id_val_size,
                    train_limit=dc.train_limit - 1, test_limit=dc.test_limit, seed=0)
    same = Config.from_flat({"data/train_limit": dc.train_limit - 1}, base=config)
    assert round0_key(same, fewer) != round0_key(config, data)


@pytest.fixture(scope="module")
def three_runs(tiny, tmp_path_factory) -> tuple[RunResult, RunResult, RunResult, Round0Cache]:
    """(first run: computes round 0 into an empty cache; a run with another inversion config
    and the cache; that config without the cache)."""
    config, data = tiny
    cache = Round0Cache(tmp_path_factory.mktemp("round0"))
    first = run_rounds(config, data=data, round0_cache=cache)
    other = Config.from_flat({"inversion/alpha_kl": 3.0, "inversion/steps": 7,
                              "garbage/policy": "uncertain", "rounds/count": 2}, base=config)
    reported: list[tuple[dict, RoundState]] = []
    cached = run_rounds(other, data=data, round0_cache=cache,
                        on_round=lambda rec, st: reported.append((rec, st)))
    assert [rec["round"] for rec, _ in reported] == [0, 1, 2]  # round 0 reported too
    assert reported[0][1].config == other.to_flat()  # its checkpoint resumes this run
    computed = run_rounds(other, data=data)
    return first, cached, computed, cache


def test_second_run_reuses_round0(three_runs) -> None:
    first, cached, computed, cache = three_runs
    assert first.records[0][CACHED] is False and computed.records[0][CACHED] is False
    assert cached.records[0][CACHED] is True
    # the stored record, times included: no training happened in the second run
    assert {**cached.records[0], CACHED: False} == first.records[0]
    assert [r[CACHED] for r in cached.records[1:]] == [None, None]
    assert len(list(cache.folder.glob("*.pt"))) == 1


def test_later_rounds_equal_a_run_without_the_cache(three_runs) -> None:
    _, cached, computed, _ = three_runs
    assert _without_times({**cached.records[0], CACHED: False}) == _without_times(
        computed.records[0])
    for a, b in zip(cached.records[1:], computed.records[1:], strict=True):
        assert _without_times(a) == _without_times(b)  # bit for bit, every OOD row too
    assert _states_equal(cached.state, computed.state)
    assert torch.equal(cached.state.grid, computed.state.grid)


def test_a_changed_round0_field_misses(tiny, three_runs) -> None:
    config, data = tiny
    *_, cache = three_runs
    other = Config.from_flat({"classifier/lr": 1e-3}, base=config)
    result = run_rounds(other, data=data, round0_cache=cache)
    assert result.records[0][CACHED] is False
    assert cache.path(round0_key(other, data)).is_file()


def test_a_corrupted_entry_is_ignored_and_replaced(tiny, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config, data = tiny
    cache = Round0Cache(tmp_path)
    path = cache.path(round0_key(config, data))
    path.write_bytes(b"not a state" * 100)
    with pytest.raises(ValueError, match=f"{path}.*not a netinv round state"):
        RoundState.load(path)
    with caplog.at_level(logging.WARNING, logger="netinv.round0_cache"):
        result = run_rounds(config, data=data, round0_cache=cache)
    assert result.records[0][CACHED] is False
    assert str(path) in caplog.text
    assert RoundState.load(path).records == [result.records[0]]  # replaced by a good one


def test_entry_of_other_round0_settings_is_not_used(tiny, tmp_path: Path) -> None:
    config, data = tiny
    cache = Round0Cache(tmp_path)
    other = Config.from_flat({"classifier/lr": 1e-3}, base=config)
    run_rounds(other, data=data, round0_cache=cache)
    # an entry moved under this config's key (a hand copy, a hash clash) is refused
    cache.path(round0_key(other, data)).rename(cache.path(round0_key(config, data)))
    assert run_rounds(config, data=data, round0_cache=cache).records[0][CACHED] is False


def test_wait_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"`wait_s` must be > 0 seconds, got wait_s=0"):
        Round0Cache("/tmp/x", wait_s=0)


# ----------------------------------------------------------------------------- processes

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from netinv.config import Config
    from netinv.pipeline import prepare_data, run_rounds
    from netinv.round0_cache import Round0Cache

    folder, flat, me, other = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    config = Config.from_flat(flat)
    data = prepare_data(config)
    Path(me).touch()  # start together: both have imported and prepared the data
    while not Path(other).exists():
        time.sleep(0.01)
    result = run_rounds(config, data=data, round0_cache=Round0Cache(folder))
    print(json.dumps(result.records[0]["round0_cached"]))
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_two_processes_compute_one_key_once(tiny, tmp_path: Path) -> None:
    config, _ = tiny
    flat = json.dumps(config.to_flat())
    ready = [tmp_path / "a.ready", tmp_path / "b.ready"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "cache"), flat,
                               str(ready[i]), str(ready[1 - i])], stdout=subprocess.PIPE,
                              text=True, env=_env()) for i in (0, 1)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert sorted(json.loads(out.strip().splitlines()[-1]) for out in outputs) == [False, True]


def test_a_crashed_lock_holder_blocks_nobody(tiny, tmp_path: Path) -> None:
    config, data = tiny
    cache = Round0Cache(tmp_path, wait_s=300)
    key = round0_key(config, data)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from netinv.round0_cache import KeyLock
            lock = KeyLock(Path({str(cache.lock(key).path)!r}))  # held while referenced
            assert lock.acquire(1.0)
            print("locked", flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True, env=_env())
    assert holder.stdout.readline().strip() == "locked"
    assert not cache.lock(key).acquire(0.5)  # it really holds the lock
    holder.send_signal(signal.SIGKILL)  # dies holding it, before storing anything
    holder.wait()
    result = run_rounds(config, data=data, round0_cache=cache)
    assert result.records[0][CACHED] is False
    assert cache.path(key).is_file()  # stored: this run got the lock (not a timeout)
