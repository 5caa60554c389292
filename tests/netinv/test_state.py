"""netinv.state: a RoundState round-trips, and anything else is refused with a clear ValueError."""

from __future__ import annotations

import dataclasses
import pathlib
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from netinv.models import build_model
from netinv.config import Config
from netinv.state import RoundState, check_resumable
from tests.helpers.tiny import tiny_state


def test_save_load_round_trips_every_field(tmp_path: Path) -> None:
    state = tiny_state()
    state.save(tmp_path / "state.pt")
    loaded = RoundState.load(tmp_path / "state.pt")
    assert not list(tmp_path.glob("*.tmp"))  # written through a temp file, renamed
    for f in dataclasses.fields(RoundState):
        a, b = getattr(state, f.name), getattr(loaded, f.name)
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), f.name
        elif f.name in ("classifier", "generator"):
            assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys(), f.name
        elif f.name != "test_scores":
            assert a == b, f.name
    assert torch.equal(loaded.test_scores["id"]["ue"], state.test_scores["id"]["ue"])
    # the specs rebuild models that take the saved weights
    build_model(loaded.classifier_spec).load_state_dict(loaded.classifier)
    build_model(loaded.generator_spec).load_state_dict(loaded.generator)


class _Payload:
    """A pickle that would create a file when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.marker,))


_DROP = object()


def _payload(**changes: Any) -> dict[str, Any]:
    """A valid state's dict with keys changed (or removed: ``_DROP``)."""
    payload = dataclasses.asdict(tiny_state())
    for key, value in changes.items():
        if value is _DROP:
            del payload[key]
        else:
            payload[key] = value
    return payload


def _truncated(path: Path) -> None:
    tiny_state().save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BAD_FILES: dict[str, Callable[[Path], None]] = {
    "truncated": _truncated,
    "empty": lambda path: path.write_bytes(b""),
    "random bytes": lambda path: path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                      dtype=torch.uint8).numpy().tobytes()),
    "code in the pickle": lambda path: torch.save({"round": _Payload(path.with_name("ran"))},
                                                  path),
    "not a dict": lambda path: torch.save([torch.zeros(2)], path),
    "missing key": lambda path: torch.save(_payload(classifier_spec=_DROP), path),
    "unknown key": lambda path: torch.save(_payload(extra=1), path),
    "round is a string": lambda path: torch.save(_payload(round="1"), path),
    "round is a bool": lambda path: torch.save(_payload(round=True), path),
    "pool is a list": lambda path: torch.save(_payload(garbage_pool=[0.0]), path),
    "weights are not tensors": lambda path: torch.save(_payload(classifier={"w": 1.0}), path),
    "generator is a string": lambda path: torch.save(_payload(generator="weights"), path),
}
KEYS = {"missing key": "'classifier_spec' is missing", "unknown key": r"unknown keys \['extra'\]",
        "round is a string": "'round' must be int", "round is a bool": "'round' must be int",
        "pool is a list": "'garbage_pool' must be Tensor",
        "weights are not tensors": "'classifier' must be dict",
        "generator is a string": "'generator' must be dict or NoneType"}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_refuses_what_is_not_a_round_state(case: str, tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    BAD_FILES[case](path)
    with pytest.raises(ValueError, match="not a netinv round state") as info:
        RoundState.load(path)
    message = str(info.value)
    assert str(path) in message  # names the file
    assert "weights_only" not in message  # never torch's advice to load unsafely
    if case in KEYS:
        assert info.match(KEYS[case])  # names the key
    assert not (tmp_path / "ran").exists()  # the crafted pickle ran no code


def test_a_field_added_since_counts_with_its_default_on_resume() -> None:
    state = tiny_state()  # its config names only data/id: every other field is a default
    check_resumable(Config.from_flat({"data/id": "mnist"}), state)
    with pytest.raises(ValueError, match=r"rounds/fitted_scores: saved=False now=True"):
        check_resumable(Config.from_flat({"data/id": "mnist", "rounds/fitted_scores": True}),
                        state)
