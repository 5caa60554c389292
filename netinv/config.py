"""One typed, validated configuration for a whole netinv run.

A run is described by five frozen sections (data, classifier, inversion, garbage, rounds) held by
one :class:`Config`. Every field has a type, a default that gives a sensible MNIST run, and a range
checked at construction; a bad value raises at once, naming the field, the value and what is
allowed. Search spaces and the CLI address fields by flat keys ``"section/field"``
(``"inversion/alpha_kl"``), which :meth:`Config.from_flat` turns into a config and
:meth:`Config.to_flat` gives back.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

DATASET_NAMES = ("mnist", "fashionmnist", "cifar10", "svhn", "cifar100", "tinyimagenet")
CONDITIONINGS = ("label", "vector", "matrix", "vector+matrix")
EXCLUSION_POLICIES = ("all", "uncertain")
NOISE_BRIGHTNESS = ("uniform", "id")


def _check(ok: bool, rule: str, **received: Any) -> None:
    """Raise ValueError stating ``rule`` and the received ``name=value`` pairs unless ``ok``."""
    if not ok:
        got = ", ".join(f"{name}={value!r}" for name, value in received.items())
        raise ValueError(f"{rule}, got {got}.")


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    _check(value in allowed, f"`{name}` must be one of {', '.join(allowed)}", **{name: value})


@dataclass(frozen=True)
class DataConfig:
    """Which datasets a run uses and how they are split."""

    id: str = "mnist"  # in-distribution dataset, one of DATASET_NAMES
    ood: tuple[str, ...] = ("fashionmnist", "cifar10", "tinyimagenet")  # OOD sets, >= 1
    root: str | None = None  # data root; None = $NETINV_DATA, else the per-user cache folder
    download: bool = True  # fetch missing datasets through torchvision
    id_val_size: int = 5000  # ID train images held out for validation, >= 1
    ood_val_fraction: float = 0.5  # share of each OOD set used for validation, in (0, 1)
    train_limit: int | None = None  # cap on ID train images (smoke runs); None = all
    test_limit: int | None = None  # cap on ID test and each OOD split; None = all

    def __post_init__(self) -> None:
        _check_choice(self.id, DATASET_NAMES, "data/id")
        _check(len(self.ood) >= 1, "`data/ood` must name at least one OOD set", ood=self.ood)
        for name in self.ood:
            _check_choice(name, DATASET_NAMES, "data/ood")
        _check(self.id not in self.ood, "`data/ood` must not contain the ID set", ood=self.ood)
        _check(len(set(self.ood)) == len(self.ood), "`data/ood` has duplicates", ood=self.ood)
        _check(self.id_val_size >= 1, "`data/id_val_size` must be >= 1",
               id_val_size=self.id_val_size)
        _check(0 < self.ood_val_fraction < 1, "`data/ood_val_fraction` must lie in (0, 1)",
               ood_val_fraction=self.ood_val_fraction)
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            _check(value is None or value >= 10, f"`data/{name}` must be None or >= 10",
                   **{name: value})


@dataclass(frozen=True)
class ClassifierConfig:
    """The (n+1)-class classifier and how it is trained each round."""

    width: int = 32  # channels of the first conv block (later blocks double it), 4..256
    epochs: int = 1  # passes over ID train + garbage pool per round, >= 1
    batch_size: int = 128  # images per step, >= 8
    lr: float = 2e-3  # Adam learning rate, (0, 1]
    weight_decay: float = 0.0  # AdamW decoupled weight decay, >= 0
    shift: int = 0  # random translation of every training image by up to this many px, 0..8
    reinit: bool = False  # retrain from scratch each round instead of fine-tuning

    def __post_init__(self) -> None:
        _check(4 <= self.width <= 256, "`classifier/width` must lie in [4, 256]",
               width=self.width)
        _check(self.epochs >= 1, "`classifier/epochs` must be >= 1", epochs=self.epochs)
        _check(self.batch_size >= 8, "`classifier/batch_size` must be >= 8",
               batch_size=self.batch_size)
        _check(0 < self.lr <= 1, "`classifier/lr` must lie in (0, 1]", lr=self.lr)
        _check(self.weight_decay >= 0, "`classifier/weight_decay` must be >= 0",
               weight_decay=self.weight_decay)
        _check(0 <= self.shift <= 8, "`classifier/shift` must lie in [0, 8]", shift=self.shift)


@dataclass(frozen=True)
class InversionConfig:
    """The conditional generator and the network-inversion loss it is trained with.

    Loss = alpha_kl * KL(P || Q) + beta_ce * CE(Q, argmax P) + gamma_cosine * cosine
    + delta_ortho * orthogonality (see :mod:`netinv.inversion`).
    """

    conditioning: str = "label"  # one of CONDITIONINGS
    latent_dim: int = 64  # size of the noise vector z, 1..1024
    width: int = 16  # channels of the generator's last up-convolution, 4..256
    dropout: float = 0.5  # dropout after each up-convolution, [0, 1)
    lr: float = 3e-3  # Adam learning rate, (0, 1]
    steps: int = 200  # generator optimisation steps per round, >= 1
    batch_size: int = 64  # images per generator step, >= 2 (cosine/ortho need pairs)
    samples_per_round: int = 2000  # inverted images offered to the garbage class per round, >= 1
    warm_start: bool = True  # keep the generator between rounds instead of a fresh one
    alpha_kl: float = 1.0  # weight of KL(P || Q), >= 0
    beta_ce: float = 1.0  # weight of CE(Q, argmax P), >= 0
    gamma_cosine: float = 0.1  # weight of mean pairwise feature cosine similarity, >= 0
    delta_ortho: float = 0.1  # weight of the feature Gram matrix's distance to I, >= 0

    def __post_init__(self) -> None:
        _check_choice(self.conditioning, CONDITIONINGS, "inversion/conditioning")
        _check(1 <= self.latent_dim <= 1024, "`inversion/latent_dim` must lie in [1, 1024]",
               latent_dim=self.latent_dim)
        _check(4 <= self.width <= 256, "`inversion/width` must lie in [4, 256]",
               width=self.width)
        _check(0 <= self.dropout < 1, "`inversion/dropout` must lie in [0, 1)",
               dropout=self.dropout)
        _check(0 < self.lr <= 1, "`inversion/lr` must lie in (0, 1]", lr=self.lr)
        _check(self.steps >= 1, "`inversion/steps` must be >= 1", steps=self.steps)
        _check(self.batch_size >= 2, "`inversion/batch_size` must be >= 2",
               batch_size=self.batch_size)
        _check(self.samples_per_round >= 1, "`inversion/samples_per_round` must be >= 1",
               samples_per_round=self.samples_per_round)
        weights = ("alpha_kl", "beta_ce", "gamma_cosine", "delta_ortho")
        for name in weights:
            _check(getattr(self, name) >= 0, f"`inversion/{name}` must be >= 0",
                   **{name: getattr(self, name)})
        _check(any(getattr(self, name) > 0 for name in weights),
               "at least one inversion loss weight must be > 0",
               **{name: getattr(self, name) for name in weights})


@dataclass(frozen=True)
class GarbageConfig:
    """The garbage class: its Gaussian-noise start, which inverted images enter it, its cap.

    The noise is clipped to the valid pixel range (see ``netinv.pipeline.garbage_noise``).
    """

    noise_count: int = 2000  # Gaussian-noise images in the pool before round 1, >= 0
    noise_std: float = 1.0  # std of that noise in normalised (ID-standardised) units, > 0
    noise_brightness: str = "uniform"  # per-image level: "uniform" in [0, 1] or the "id" mean
    noise_max_scale: int = 1  # noise grain sizes 1, 2, 4, .. up to this many px, 1..16
    policy: str = "all"  # "all": every inverted image enters; "uncertain": only UE >= threshold
    ue_threshold: float = 0.5  # UE threshold of the "uncertain" policy, [0, 1]
    pool_cap: int | None = None  # most images the pool keeps (newest win); None = no cap

    def __post_init__(self) -> None:
        _check(self.noise_count >= 0, "`garbage/noise_count` must be >= 0",
               noise_count=self.noise_count)
        _check(self.noise_std > 0, "`garbage/noise_std` must be > 0", noise_std=self.noise_std)
        _check_choice(self.noise_brightness, NOISE_BRIGHTNESS, "garbage/noise_brightness")
        _check(1 <= self.noise_max_scale <= 16, "`garbage/noise_max_scale` must lie in [1, 16]",
               noise_max_scale=self.noise_max_scale)
        _check_choice(self.policy, EXCLUSION_POLICIES, "garbage/policy")
        _check(0 <= self.ue_threshold <= 1, "`garbage/ue_threshold` must lie in [0, 1]",
               ue_threshold=self.ue_threshold)
        _check(self.pool_cap is None or self.pool_cap >= 1,
               "`garbage/pool_cap` must be None or >= 1", pool_cap=self.pool_cap)


@dataclass(frozen=True)
class RoundsConfig:
    """How many train -> invert -> exclude rounds, and where and how they run."""

    count: int = 3  # rounds R, 1..100
    seed: int = 0  # seeds data splits, initialisation, noise and batches, >= 0
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda" or "cuda:N"
    amp: bool = True  # bf16 autocast where it pays (CPUs with AMX, CUDA)
    eval_batch_size: int = 2048  # images per forward pass when scoring, >= 1

    def __post_init__(self) -> None:
        _check(1 <= self.count <= 100, "`rounds/count` must lie in [1, 100]", count=self.count)
        _check(self.seed >= 0, "`rounds/seed` must be >= 0", seed=self.seed)
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               "`rounds/device` must be auto, cpu, cuda or cuda:N", device=self.device)
        _check(self.eval_batch_size >= 1, "`rounds/eval_batch_size` must be >= 1",
               eval_batch_size=self.eval_batch_size)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "classifier": ClassifierConfig,
    "inversion": InversionConfig,
    "garbage": GarbageConfig,
    "rounds": RoundsConfig,
}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` to the field's declared type, or raise TypeError naming the key."""
    hint = annotation
    optional = False
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise TypeError(f"`{key}` must not be None.")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"`{key}` must be a list of names, got {key}={value!r}.")
        return tuple(value)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, bool):
            return value
        raise TypeError(f"`{key}` must be a bool, got {key}={value!r}.")
    if hint is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            return int(value)
        raise TypeError(f"`{key}` must be an integer, got {key}={value!r}.")
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"`{key}` must be a number, got {key}={value!r}.")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"`{key}` must be a string, got {key}={value!r}.")
    raise AssertionError(f"unhandled annotation {annotation!r} for {key}")


@dataclass(frozen=True)
class Config:
    """A whole run: one frozen section per concern. Defaults are a sensible MNIST run."""

    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    inversion: InversionConfig = field(default_factory=InversionConfig)
    garbage: GarbageConfig = field(default_factory=GarbageConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)

    @staticmethod
    def keys() -> list[str]:
        """All flat keys ``"section/field"`` a config accepts, in declaration order."""
        return [f"{s}/{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]

    @classmethod
    def from_flat(cls, overrides: dict[str, Any] | None = None, *, base: Config | None = None
                  ) -> Config:
        """Build a config from flat ``"section/field"`` overrides on top of ``base``.

        Args:
            overrides: Flat keys to values; values may be strings (CLI) and are converted to the
                field's type. Nested dicts ``{"section": {"field": v}}`` are accepted too (Ray Tune
                unflattens ``/`` keys).
            base: Config to override; None = the defaults.

        Returns:
            A new validated Config.

        Raises:
            KeyError: An unknown key; the message lists the valid keys of that section.
            TypeError: A value of the wrong type.
            ValueError: A value out of its allowed range.
        """
        base = base or cls()
        flat: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and key in SECTIONS:
                flat.update({f"{key}/{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        per_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, value in flat.items():
            section, _, name = key.partition("/")
            if section not in SECTIONS:
                raise KeyError(f"unknown config key {key!r}: the section must be one of "
                               f"{', '.join(SECTIONS)} (keys look like 'inversion/alpha_kl').")
            hints = typing.get_type_hints(SECTIONS[section])
            if name not in hints:
                valid = ", ".join(f"{section}/{n}" for n in hints)
                raise KeyError(f"unknown config key {key!r}; valid keys of {section}: {valid}.")
            per_section[section][name] = _coerce(key, value, hints[name])
        return cls(**{s: dataclasses.replace(getattr(base, s), **per_section[s])
                      for s in SECTIONS})

    def to_flat(self) -> dict[str, Any]:
        """The config as flat ``"section/field"`` keys; tuples become lists (JSON-ready)."""
        flat = {}
        for section in SECTIONS:
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                flat[f"{section}/{key}"] = list(value) if isinstance(value, tuple) else value
        return flat

    def to_json(self) -> str:
        """The flat config as a JSON string (what runs log and checkpoints store)."""
        return json.dumps(self.to_flat(), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Inverse of :meth:`to_json`."""
        return cls.from_flat(json.loads(text))
