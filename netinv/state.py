"""The run contract: what a finished round leaves behind, and when it may be resumed.

A :class:`RoundState` holds everything needed to continue a run after a finished round (the
models' weights and specs, the garbage pool, every record so far) or to export its classifier
as a :class:`~netinv.detector.Detector`. It is written by the round loop
(:func:`netinv.pipeline.run_rounds`) and read by the CLI, the Tune trainable and the analysis,
none of which needs the loop to read it.

    state = RoundState.load("runs/x/state.pt")
    check_resumable(config, state)  # before spending anything on the run
"""

from __future__ import annotations

import dataclasses
import io
import os
import types
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from netinv.config import Config

RESUMABLE_CHANGES = ("rounds/count", "rounds/device", "data/root")  # may differ on resume


@dataclass
class RoundState:
    """Everything needed to resume after a finished round; saved with ``torch.save``.

    Only tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)``
    reads it back. The specs rebuild the models (:func:`netinv.models.build_model`) before
    their weights are loaded.
    """

    round: int  # rounds finished; 0 = the noise-only baseline
    config: dict[str, Any]  # Config.to_flat() of the run
    classifier: dict[str, Tensor]
    classifier_spec: dict[str, Any]  # the classifier's spec()
    generator: dict[str, Tensor] | None  # None before round 1
    garbage_pool: Tensor  # (G, C, H, W) float32 in the classifier's (normalised) input space
    generator_spec: dict[str, Any] | None = None  # the generator's spec(); None before round 1
    records: list[dict[str, Any]] = field(default_factory=list)  # one per finished round
    grid: Tensor | None = None  # (n * pipeline.GRID_PER_CLASS, C, H, W) uint8 inversions
    test_scores: dict[str, dict[str, Tensor]] | None = None  # "id"/OOD name -> score -> (N,)
    shape: list[int] = field(default_factory=list)  # ID input (C, H, W)
    mean: list[float] = field(default_factory=list)  # ID train per-channel mean, pixels in [0, 1]
    std: list[float] = field(default_factory=list)  # ID train per-channel std
    classes: list[str] = field(default_factory=list)  # the n ID class names

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file + rename), so a crash never leaves half a checkpoint; the
        temp name is unique per process and call, so two writers of one path cannot collide."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            torch.save(dataclasses.asdict(self), tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike | io.BytesIO) -> RoundState:
        """Read a state written by :meth:`save` (safe: ``weights_only=True``).

        Args:
            path: The file, or its bytes as a ``BytesIO``.

        Raises:
            ValueError: The file is not a netinv round state: unreadable (truncated, random
                bytes, a pickle of other objects), or a key is missing, unknown or ill-typed.
                The message names the file and the key.
        """
        name = _name_of(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types; its text advises unsafe loading
            raise ValueError(f"{name} is not a netinv round state (written by RoundState.save): "
                             f"it cannot be read ({type(err).__name__}).") from None
        if not isinstance(payload, dict):
            raise ValueError(f"{name} is not a netinv round state: it must hold a dict, got "
                             f"type={type(payload).__name__}.")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in payload:
                raise ValueError(f"{name} is not a netinv round state: key {f.name!r} is "
                                 f"missing.")
            _check_type(name, f.name, payload[f.name], hints[f.name])
        unknown = sorted(set(payload) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{name} is not a netinv round state: unknown keys {unknown}.")
        return cls(**payload)


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A CPU copy of the model's state; on CPU ``.cpu()`` alone would alias the live weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def check_resumable(config: Config, state: RoundState) -> None:
    """A state resumes only a run that differs at most in where it runs and how many rounds.

    A key the saved config lacks (a field added since) counts with its default value, which
    is what the run used then.

    Raises:
        ValueError: naming every other key whose value differs from the saved one.
    """
    flat = config.to_flat()
    saved = {**Config.from_flat({}).to_flat(), **state.config}
    changed = [key for key, value in saved.items()
               if key not in RESUMABLE_CHANGES and flat.get(key) != value]
    if changed:
        diffs = ", ".join(f"{k}: saved={saved[k]!r} now={flat.get(k)!r}" for k in changed)
        raise ValueError(f"cannot resume: the state was saved by a different config ({diffs}).")


# ----------------------------------------------------------------------------- helpers


def _name_of(path: str | os.PathLike | io.BytesIO) -> str:
    return "the given bytes" if isinstance(path, io.BytesIO) else f"{os.fspath(path)!r}"


def _check_type(name: str, key: str, value: Any, hint: Any) -> None:
    """``value`` must match the field's annotation: its outer type (``dict[str, Tensor]`` ->
    dict), None where the annotation allows it, and tensors as a state dict's values."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    allowed = tuple(typing.get_origin(o) or o for o in options)  # e.g. (dict, NoneType)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if ok and Tensor in typing.get_args(options[0]) and isinstance(value, dict):
        ok = all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())
    if not ok:
        wanted = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
        raise ValueError(f"{name} is not a netinv round state: key {key!r} must be {wanted}, "
                         f"got type={type(value).__name__}.")
