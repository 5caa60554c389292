"""Named configurations found by the studies, for ``python -m netinv --preset NAME`` and
``python -m study.launch --preset NAME``.

A preset is a dict of flat config overrides on top of the defaults (``Config.from_flat``). The
evidence behind each one, and how to reproduce it, is in ``docs/results.md``.

    from netinv import Config
    from netinv.presets import get_preset
    config = Config.from_flat(get_preset("mnist"))
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # MNIST as ID: longer classifier training per round for ID accuracy, 4 inversion rounds
    "mnist": {
        "data/id": "mnist",
        "data/ood": ["fashionmnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48,
        "classifier/epochs": 3,
        "rounds/count": 4,
    },
    # FashionMNIST as ID (OOD: MNIST is the hard case)
    "fashionmnist": {
        "data/id": "fashionmnist",
        "data/ood": ["mnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48,
        "classifier/epochs": 3,
        "rounds/count": 4,
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s flat overrides.

    Raises:
        ValueError: Unknown name; the message lists the presets.
    """
    if name not in PRESETS:
        raise ValueError(f"`preset` must be one of {', '.join(PRESETS)}, got preset={name!r}.")
    return {key: list(value) if isinstance(value, list) else value
            for key, value in PRESETS[name].items()}
