"""A content-addressed cache of round 0, so runs that share it train it once.

Round 0 (noise-only garbage class: train the classifier, evaluate it) depends on the data, the
classifier and the noise settings, never on the inversion or exclusion settings. The trials of a
study that searches only the latter all compute the same round 0; with a cache the first one
computes it, stores its :class:`~netinv.state.RoundState` under a key of everything round 0
depends on, and the others resume from it at round 1::

    cache = Round0Cache()  # $NETINV_CACHE/round0 (node-local like the decoded data), or
                           # $NETINV_ROUND0_CACHE
    result = run_rounds(config, round0_cache=cache)
    result.records[0]["round0_cached"]  # True when round 0 came from the cache

The key (:func:`round0_key`) hashes the config fields of :func:`round0_fields`, the resolved device
type and hardware (GPU name or CPU capability), whether bf16 autocast is in use
(:func:`netinv.inference.uses_bf16`), the torch build and thread count, the source of the modules
round 0 runs (:func:`code_version`) and the prepared data's contents (:func:`data_fingerprint`).
Entries are written atomically (temp file + rename). Several processes wanting one key take turns
on a per-key ``flock``: the first computes and stores, the others wait and then load; the kernel
drops the lock of a process that dies, so a crashed holder blocks nobody, and a holder that hangs
longer than ``wait_s`` is passed by (the waiter computes without storing). An unreadable or
mismatched entry is logged, recomputed and replaced.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from netinv.config import Config
from netinv.datasets import cache_dir
from netinv.inference import resolve_device, uses_bf16
from netinv.state import RoundState

if TYPE_CHECKING:
    from netinv.data import PreparedData
    from netinv.pipeline import RunResult

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the stored entry changes meaning; part of every key
CACHED = "round0_cached"  # the record key that says where round 0 came from
LOCK_WAIT_S = 3600.0  # longest wait for another process computing the same key
LOCK_POLL_S = 0.2  # seconds between tries of a held lock

# Config keys round 0 does NOT depend on; every other key is part of the cache key, so a field
# added later misses the cache until it is listed here (a wasted round 0, never a wrong one).
# Checked against run_rounds/_start/_invert_and_exclude/train_classifier/evaluate:
NOT_ROUND0_SECTIONS = (
    "inversion",  # round 0 never inverts; the generator that round 1 starts from is built in
    # _start from rounds/seed right after the classifier, so a run resumed from a cached
    # round 0 builds the same one (inversion/* then applies from round 1 on)
)
NOT_ROUND0_KEYS = (
    "data/root",  # where the files are; what they hold is data_fingerprint's
    "data/download",  # whether missing files may be fetched; same bytes either way
    "classifier/reinit",  # a fresh classifier only in rounds r > 0
    "garbage/policy",  # exclusion runs only in rounds r > 0
    "garbage/ue_threshold",  # idem
    "garbage/confidence_threshold",  # idem (missing here, it split one study's round 0 in two)
    "garbage/pool_cap",  # applied by exclude(), rounds r > 0; the noise pool is never capped
    "rounds/count",  # how many rounds follow round 0
    "rounds/device",  # replaced by the resolved device type ("auto" and "cpu" may agree)
)
# IN, for the record: data/* else (which images, splits, caps), classifier/* else (the model
# and its training), garbage/noise_* (the initial pool, drawn from its own seeded stream),
# rounds/seed (init, noise, batch order, data splits), rounds/amp (bf16 numerics),
# rounds/eval_batch_size (chunking of the evaluation's forward passes).

# the modules whose code computes round 0 from the prepared data (the data itself is hashed,
# so netinv.data/datasets are not); any edit of them, even a comment, changes every key:
# spurious misses while developing, never a stale hit (a version constant would keep entries
# across cosmetic edits but trust people to bump it)
ROUND0_MODULES = ("config", "detector", "inference", "knn", "layer_stats", "metrics", "models",
                  "optim", "pipeline", "records", "round0_cache", "scores", "state")

_FINGERPRINTS: dict[int, tuple[weakref.ref, str]] = {}  # id(data) -> (data, digest)


def round0_fields(config: Config) -> dict[str, Any]:
    """The flat config keys and values round 0 depends on (all but the NOT_ROUND0_* ones)."""
    return {key: value for key, value in config.to_flat().items()
            if key.partition("/")[0] not in NOT_ROUND0_SECTIONS
            and key not in NOT_ROUND0_KEYS}


def code_version() -> str:
    """Hex digest of the source of :data:`ROUND0_MODULES` (netinv's files on disk)."""
    digest = hashlib.blake2b(digest_size=16)
    package = Path(__file__).resolve().parent
    for name in ROUND0_MODULES:
        digest.update(name.encode() + b"\0" + (package / f"{name}.py").read_bytes())
    return digest.hexdigest()


def data_fingerprint(data: PreparedData) -> str:
    """Hex digest of every tensor, name and statistic of ``data``, memoised per object.

    About 0.1 s for MNIST's 55k train images (2 cores); a process sharing one prepared
    data set between trials pays it once.
    """
    memo = _FINGERPRINTS.get(id(data))
    if memo is not None and memo[0]() is data:
        return memo[1]
    digest = hashlib.blake2b(digest_size=16)
    parts: list[tuple[str, torch.Tensor]] = []
    for name in ("id_train", "id_val", "id_test"):
        images = getattr(data, name)
        parts += [(f"{name}.images", images.images), (f"{name}.labels", images.labels)]
    for name, splits in data.ood.items():
        parts += [(f"ood.{name}.{split}", tensor) for split, tensor in splits.items()]
    head = {"shape": data.shape, "classes": data.classes, "mean": data.mean, "std": data.std}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name, tensor in parts:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    _FINGERPRINTS.clear()  # one data set per process, like the trainable's data memo
    _FINGERPRINTS[id(data)] = (weakref.ref(data), digest.hexdigest())
    return _FINGERPRINTS[id(data)][1]


def round0_key(config: Config, data: PreparedData) -> str:
    """The cache key of ``config``'s round 0 on ``data``: 32 hex digits."""
    device = resolve_device(config.rounds.device)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else torch.backends.cpu.get_cpu_capability())  # bf16 kernels differ
    # threads: CPU kernels may split their sums differently, so only a run with the same
    # thread count reproduces an entry bit for bit (a study's trials all have the same)
    payload = {"format": CACHE_FORMAT, "fields": round0_fields(config),
               "device": device.type, "hardware": hardware,
               "bf16": uses_bf16(device, config.rounds.amp),
               "torch": torch.__version__,
               "threads": torch.get_num_threads(), "code": code_version(),
               "data": data_fingerprint(data)}
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(),
                           digest_size=16).hexdigest()


class Round0Cache:
    """A folder of round-0 states, ``<folder>/<key>.pt``, with a lock file per key.

    Args:
        folder: Where entries live; None = ``$NETINV_ROUND0_CACHE`` if set, else
            ``$NETINV_CACHE/round0`` (see :func:`netinv.datasets.cache_dir`). Created on
            first use.
        wait_s: Longest wait, in seconds (> 0), for another process computing the same key;
            after it this process computes round 0 itself and does not store it.

    Raises:
        ValueError: ``wait_s`` is not > 0.
    """

    def __init__(self, folder: str | os.PathLike | None = None, *,
                 wait_s: float = LOCK_WAIT_S) -> None:
        if not wait_s > 0:
            raise ValueError(f"`wait_s` must be > 0 seconds, got wait_s={wait_s!r}.")
        if folder is None:
            folder = os.environ.get("NETINV_ROUND0_CACHE") or cache_dir() / "round0"
        self.folder = Path(folder)
        self.wait_s = wait_s

    def path(self, key: str) -> Path:
        """The entry of ``key`` (it may not exist)."""
        return self.folder / f"{key}.pt"

    def load(self, key: str, config: Config) -> RoundState | None:
        """The stored round 0 of ``key``, or None when there is none or it is unusable (an
        unreadable file, or one saved for other round-0 fields: logged, to be replaced)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            state = RoundState.load(path)
        except ValueError as err:
            log.warning("ignoring the round-0 cache entry: %s", err)
            return None
        try:  # a config this code no longer accepts is of other settings too
            saved = round0_fields(Config.from_flat({k: v for k, v in state.config.items()
                                                    if k in Config.keys()}))
        except (KeyError, TypeError, ValueError):
            saved = None
        if state.round != 0 or saved != round0_fields(config):
            log.warning("ignoring the round-0 cache entry %s: it holds round %d of other "
                        "round-0 settings", path, state.round)
            return None
        return state

    def store(self, key: str, state: RoundState) -> None:
        """Write ``state`` as the entry of ``key``: temp file in the folder, then rename."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(dataclasses.asdict(state), tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by users
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def lock(self, key: str) -> KeyLock:
        """The lock of ``key`` (not yet taken)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return KeyLock(self.folder / f"{key}.lock")

    def run(self, config: Config, *, data: PreparedData | None,
            on_round: Callable[[dict[str, Any], RoundState], None] | None) -> RunResult:
        """A fresh run of ``config`` whose round 0 comes from the cache when it is there, and
        goes into it when it is not (what ``run_rounds(..., round0_cache=self)`` does).

        The round-0 record gets ``round0_cached``: True when loaded (its times are those of
        the run that computed it), False when computed here.
        """
        from netinv.pipeline import prepare_data, run_rounds

        if data is None:
            data = prepare_data(config)
        key = round0_key(config, data)
        lock = self.lock(key)
        try:
            hit = self.load(key, config) if lock.acquire(self.wait_s) else None
            if hit is None:  # compute it; store and unlock as soon as round 0 is done
                def store_round0(record: dict[str, Any], state: RoundState) -> None:
                    if record["round"] == 0 and lock.held:
                        self.store(key, state)
                        lock.release()
                        log.info("stored round 0 in %s", self.path(key))
                    if on_round is not None:
                        on_round(record, state)

                return run_rounds(config, data=data, on_round=store_round0)
        finally:
            lock.release()
        log.info("round 0 from the cache: %s", self.path(key))
        record = {**hit.records[0], CACHED: True}
        state = dataclasses.replace(hit, config=config.to_flat(), records=[record])
        if on_round is not None:
            on_round(record, state)
        return run_rounds(config, data=data, state=state, on_round=on_round)


class KeyLock:
    """An exclusive ``flock`` on one file: held by at most one process of the node at a time,
    dropped by the kernel when its holder dies (so a crash never blocks the others)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False
        self._handle: Any = None

    def acquire(self, wait_s: float) -> bool:
        """Take the lock, waiting up to ``wait_s`` seconds; False (and not held) on timeout."""
        self._handle = open(self.path, "a+b")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("%s stayed locked for %.0f s; computing round 0 here without "
                                "storing it", self.path, wait_s)
                    self.release()
                    return False
                time.sleep(LOCK_POLL_S)

    def release(self) -> None:
        """Drop the lock (closing the file drops the flock); a no-op when not held."""
        if self._handle is not None:
            self._handle.close()  # releases the flock
            self._handle = None
        self.held = False
