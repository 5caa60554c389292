"""Progress bars for the long loops (training, inversion, evaluation, decoding), via tqdm.

A loop changes by one line: ``for idx in track(steps, desc="train", unit="batch"):``. Bars go
to stderr and are shown only when stderr is a terminal, unless forced on or off by
:func:`configure` (the CLIs' ``--progress`` and ``-q``) or the environment variable
``NETINV_PROGRESS`` (``1`` on, ``0`` off), so logs, pipes, tests and Ray workers stay clean. A
bar never reads a tensor: it counts items on the host, so it adds no device synchronisation;
it is redrawn at most every :data:`MIN_INTERVAL_S` and updated every ``every`` items.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

ENV = "NETINV_PROGRESS"  # "1": always show bars, "0": never; unset: when stderr is a terminal
MIN_INTERVAL_S = 0.5  # shortest time between two redraws of one bar, seconds
UPDATES_PER_BAR = 100  # a bar of N items is updated every max(1, N // 100) items

_forced: bool | None = None  # set by configure(); None = decide from ENV, then the terminal


def configure(*, enabled: bool | None) -> None:
    """Show bars always (True), never (False), or when stderr is a terminal (None)."""
    global _forced
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool or None, got enabled={enabled!r}.")
    _forced = enabled


def enabled() -> bool:
    """Whether bars are shown now: :func:`configure`, else ``NETINV_PROGRESS``, else whether
    stderr is a terminal."""
    if _forced is not None:
        return _forced
    env = os.environ.get(ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    return sys.stderr is not None and sys.stderr.isatty()


def track(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it",
          every: int | None = None) -> Iterator[T]:
    """Yield ``items`` unchanged, with a transient progress bar while they run.

    Args:
        items: Any iterable; its ``len()`` is the bar's length when it has one.
        desc: Short label shown before the bar, e.g. ``"invert"``.
        total: Item count when ``items`` has no ``len()``; None = unknown (a counter).
        unit: What one item is (``"batch"``, ``"step"``, ``"set"``).
        every: Update the bar every this many items, >= 1; None = about 100 updates per bar.

    Returns:
        An iterator over ``items``; ``items`` itself when bars are off (no overhead).
    """
    if not enabled():
        return iter(items)
    from tqdm.auto import tqdm

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    step = every if every is not None else max(1, (total or 0) // UPDATES_PER_BAR)
    if step < 1:
        raise ValueError(f"`every` must be >= 1, got every={every}.")
    return _counted(items, tqdm(total=total, desc=desc, unit=unit, leave=False,
                                dynamic_ncols=True, mininterval=MIN_INTERVAL_S,
                                file=sys.stderr), step)


def _counted(items: Iterable[T], bar, step: int) -> Iterator[T]:
    pending = 0
    try:
        for item in items:
            yield item
            pending += 1
            if pending >= step:
                bar.update(pending)
                pending = 0
        bar.update(pending)
    finally:
        bar.close()
