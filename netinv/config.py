"""One typed, validated configuration for a whole netinv run.

A run is described by five frozen sections (data, classifier, inversion, garbage, rounds) held by
one :class:`Config`. Each field declares, in one place, its type, default, help text (meaning and
unit), allowed range and choices; :func:`config_fields` walks them, and that one walk serves
:meth:`Config.from_flat` (unknown keys, type conversion), construction-time validation (every
float finite, every value in its range), the ``python -m netinv`` options and their ``--help``,
and the scripts' ``--set KEY=VALUE`` overrides (:func:`parse_overrides`). A bad value raises at
once, naming the field, the value and what is allowed. Fields are addressed by flat keys
``"section/field"`` (``"inversion/alpha_kl"``), which :meth:`Config.from_flat` turns into a
config and :meth:`Config.to_flat` gives back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

DATASET_NAMES = ("mnist", "fashionmnist", "cifar10", "svhn", "cifar100", "tinyimagenet",
                 "kmnist", "dtd", "places365")
FOLDER_PREFIX = "folder:"  # "folder:<path>": the user's own image-folder tree as a dataset
CONDITIONINGS = ("label", "vector", "matrix", "vector+matrix")
EXCLUSION_POLICIES = ("all", "uncertain", "confident", "mix", "none")
GENERATOR_ARCHS = ("transposed", "upsample")
CLASSIFIER_ARCHS = ("cnn", "resnet", "resnet18")
# nn.Conv2d modules per classifier body, in forward order: the layers the layer-statistics
# score can use (tests/netinv/test_models.py counts them in the built models)
CLASSIFIER_CONVOLUTIONS = {"cnn": 3, "resnet": 8, "resnet18": 20}
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "linear", "constant")
FEATURE_STATS_TARGETS = ("running", "id")
NOISE_BRIGHTNESS = ("uniform", "id")
DEVICES = "auto, cpu, cuda or cuda:N"


def _check(ok: bool, rule: str, **received: Any) -> None:
    """Raise ValueError stating ``rule`` and the received ``name=value`` pairs unless ``ok``."""
    if not ok:
        got = ", ".join(f"{name}={value!r}" for name, value in received.items())
        raise ValueError(f"{rule}, got {got}.")


def _number(text: str) -> int | float:
    """``"5"`` -> 5, ``"0.5"`` -> 0.5, ``"2**32"`` -> 4294967296 (bounds as written)."""
    base, power, exponent = text.partition("**")
    if power:
        return int(base) ** int(exponent)
    try:
        return int(text)
    except ValueError:
        return float(text)


@dataclass(frozen=True)
class Interval:
    """An allowed range written as in the docs: ``"[0, 1)"``, ``"(0, 1]"``, ``">= 1"``, ``"> 0"``.

    Square brackets are closed ends, round ones open; ``text`` is kept for messages and help.
    """

    text: str

    @functools.cached_property
    def _ends(self) -> tuple[float, float, bool, bool]:  # low, high, low closed, high closed
        text = self.text.strip()
        for op, closed in ((">=", True), (">", False)):
            if text.startswith(op):
                return _number(text[len(op):].strip()), math.inf, closed, False
        low, _, high = text[1:-1].partition(",")
        return _number(low.strip()), _number(high.strip()), text[0] == "[", text[-1] == "]"

    def __contains__(self, value: float) -> bool:
        low, high, low_closed, high_closed = self._ends
        above = value >= low if low_closed else value > low
        below = value <= high if high_closed else value < high
        return above and below

    @property
    def rule(self) -> str:
        """``"lie in [0, 1)"`` or ``"be >= 1"``: what follows "must" in an error message."""
        return f"be {self.text}" if self.text[0] in "<>" else f"lie in {self.text}"


def option(default: Any, help: str, *, range: str | None = None,
           choices: tuple[str, ...] | None = None, also: str | None = None) -> Any:
    """A config field with its help text (meaning, unit), allowed range and choices.

    Args:
        default: The field's default (immutable: numbers, strings, tuples, None).
        help: Meaning and unit, a short lowercase phrase (shown by ``--help``).
        range: Allowed values as an interval, e.g. ``"[0, 1)"`` or ``">= 1"``; None = any.
        choices: Allowed strings (for a tuple field: allowed items); None = any.
        also: A prefix allowed besides ``choices`` (``FOLDER_PREFIX``: ``folder:<path>``).
    """
    interval = Interval(range) if range is not None else None
    return field(default=default, metadata={"help": help, "range": interval, "choices": choices,
                                            "also": also})


@dataclass(frozen=True)
class ConfigField:
    """One config field as :func:`config_fields` yields it: what the CLI, ``from_flat`` and the
    scripts need to know about it."""

    key: str  # flat key "section/name"
    name: str  # the field's name within its section
    kind: type  # int, float, bool, str, or tuple (a list of names)
    optional: bool  # None is allowed (and means what the help says)
    default: Any
    help: str  # meaning and unit
    range: Interval | None
    choices: tuple[str, ...] | None
    also: str | None = None  # a prefix allowed besides the choices, e.g. "folder:"

    def describe(self) -> str:
        """Help line: meaning and unit, range, choices and default (for ``--help``)."""
        parts = [self.help]
        if self.range is not None:
            parts.append(f"{'None or ' if self.optional else ''}{self.range.text}")
        if self.choices is not None:
            parts.append(f"{'each ' if self.kind is tuple else ''}one of "
                         f"{', '.join(self.choices)}"
                         + (f" or {self.also}PATH" if self.also else ""))
        default = ",".join(self.default) if self.kind is tuple else self.default
        return f"{'; '.join(parts)} (default: {default})"

    def check(self, value: Any) -> None:
        """Raise ValueError unless ``value`` is allowed: finite (floats), in range, a choice."""
        if value is None:
            _check(self.optional, f"`{self.key}` must not be None", **{self.name: value})
            return
        for item in value if self.kind is tuple else (value,):
            if self.kind is float:
                _check(math.isfinite(item), f"`{self.key}` must be a finite number",
                       **{self.name: item})
            if self.range is not None:
                rule = self.range.rule
                if self.optional:
                    rule = "be None or " + rule.removeprefix("be ")
                _check(item in self.range, f"`{self.key}` must {rule}", **{self.name: item})
            if self.choices is not None:
                also = f" or {self.also}PATH" if self.also else ""
                _check(item in self.choices or bool(self.also and item.startswith(self.also)),
                       f"`{self.key}` must be one of {', '.join(self.choices)}{also}",
                       **{self.key: item})

    def coerce(self, value: Any) -> Any:
        """``value`` (a CLI/JSON string or a Python value) as this field's type.

        Raises:
            TypeError: The value cannot be read as the field's type; names the key.
        """
        key = self.key
        if value is None or (self.optional and isinstance(value, str)
                             and value.lower() == "none"):
            if self.optional:
                return None
            raise TypeError(f"`{key}` must not be None.")
        if self.kind is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"`{key}` must be a list of names, got {key}={value!r}.")
            return tuple(value)
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise TypeError(f"`{key}` must be a bool, got {key}={value!r}.")
        if self.kind in (int, float) and not isinstance(value, bool):
            if isinstance(value, str):
                try:
                    return self.kind(value)
                except ValueError:
                    pass
            elif self.kind is float and isinstance(value, (int, float)):
                return float(value)
            elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
                return int(value)
        if self.kind is str and isinstance(value, str):
            return value
        noun = {int: "an integer", float: "a number", str: "a string"}[self.kind]
        raise TypeError(f"`{key}` must be {noun}, got {key}={value!r}.")


class _Section:
    """Base of the config sections: every field is checked against its declaration (finite,
    range, choices) at construction, then :meth:`_check_together` checks rules across fields."""

    SECTION: ClassVar[str]  # the section's name in flat keys
    TITLE: ClassVar[str]  # one line for --help

    def __post_init__(self) -> None:
        for spec in _section_fields(type(self)):
            spec.check(getattr(self, spec.name))
        self._check_together()

    def _check_together(self) -> None:
        """Rules that involve several fields; none unless a section says otherwise."""


@functools.cache
def _section_fields(cls: type) -> tuple[ConfigField, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        hint, optional = hints[f.name], False
        if isinstance(hint, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint, optional = args[0], len(args) < len(typing.get_args(hint))
        kind = tuple if typing.get_origin(hint) is tuple else hint
        assert kind in (int, float, bool, str, tuple), f"unhandled type {hint!r} of {f.name}"
        specs.append(ConfigField(key=f"{cls.SECTION}/{f.name}", name=f.name, kind=kind,
                                 optional=optional, default=f.default,
                                 help=f.metadata["help"], range=f.metadata["range"],
                                 choices=f.metadata["choices"], also=f.metadata["also"]))
    return tuple(specs)


@dataclass(frozen=True)
class DataConfig(_Section):
    """Which datasets a run uses and how they are split."""

    SECTION: ClassVar[str] = "data"
    TITLE: ClassVar[str] = "which datasets a run uses and how they are split"

    id: str = option("mnist", "in-distribution dataset: a name, or folder:PATH for an image-folder "
                     "tree PATH/[train|test/]<class>/*.png|jpg (class names from its folders; "
                     "the path is made absolute here)", choices=DATASET_NAMES,
                     also=FOLDER_PREFIX)
    ood: tuple[str, ...] = option(("fashionmnist", "cifar10", "tinyimagenet"),
                                  "comma-separated OOD sets, at least one, not the ID set; "
                                  "names or folder:PATH trees (a tree without test/ is used "
                                  "whole)", choices=DATASET_NAMES, also=FOLDER_PREFIX)
    root: str | None = option(None, "data folder; None = $NETINV_DATA, else the per-user cache")
    download: bool = option(True, "fetch missing datasets through torchvision")
    id_val_size: int = option(5000, "ID train images held out for validation", range=">= 1")
    ood_val_fraction: float = option(0.5, "share of each OOD set used for validation",
                                     range="(0, 1)")
    train_limit: int | None = option(None, "cap on ID train images (smoke runs); None = all",
                                     range=">= 10")
    test_limit: int | None = option(None, "cap on ID test and each OOD split; None = all",
                                    range=">= 10")
    folder_test_fraction: float = option(0.2, "share of each class of a folder:PATH ID tree "
                                         "without train/ and test/ that is its test split "
                                         "(fixed seed 0: the same in every run)",
                                         range="(0, 1)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", resolve_dataset_name(self.id))
        if isinstance(self.ood, (tuple, list)):
            object.__setattr__(self, "ood", tuple(resolve_dataset_name(n) for n in self.ood))
        super().__post_init__()

    def _check_together(self) -> None:
        _check(len(self.ood) >= 1, "`data/ood` must name at least one OOD set", ood=self.ood)
        _check(self.id not in self.ood, "`data/ood` must not contain the ID set", ood=self.ood)
        _check(len(set(self.ood)) == len(self.ood), "`data/ood` has duplicates", ood=self.ood)


def resolve_dataset_name(name: Any) -> Any:
    """``folder:<path>`` with ``~`` expanded and the path made absolute (against the working
    directory); any other value unchanged (checked against the choices later).

    Raises:
        ValueError: ``folder:`` without a path.
    """
    if not isinstance(name, str) or not name.startswith(FOLDER_PREFIX):
        return name
    path = name[len(FOLDER_PREFIX):].strip()
    _check(bool(path), "a folder dataset must be folder:PATH with a path, e.g. "
           "folder:/data/parts", name=name)
    return FOLDER_PREFIX + os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class ClassifierConfig(_Section):
    """The (n+1)-class classifier and how it is trained each round."""

    SECTION: ClassVar[str] = "classifier"
    TITLE: ClassVar[str] = "the (n+1)-class classifier and how it is trained each round"

    arch: str = option("cnn", "classifier body: cnn (small strided CNN, for 28x28 sets), resnet "
                       "(ResNet-9 sized for 32x32), resnet18 (torchvision's, 32x32 stem; "
                       "width unused; for GPUs)", choices=CLASSIFIER_ARCHS)
    width: int = option(32, "channels of the first conv block (later blocks double it)",
                        range="[4, 256]")
    epochs: int = option(1, "passes over ID train + garbage pool per round", range=">= 1")
    first_epochs: int | None = option(None, "passes in round 0 (and in every round with "
                                      "reinit), when the classifier starts from scratch; "
                                      "None = epochs", range=">= 1")
    batch_size: int = option(128, "images per step", range=">= 8")
    optimizer: str = option("adamw", "adamw (AdamW), or sgd (SGD, Nesterov momentum 0.9)",
                            choices=OPTIMIZERS)
    lr: float = option(2e-3, "peak learning rate of the schedule", range="(0, 10]")
    first_lr: float | None = option(None, "peak learning rate in round 0 (and in every round "
                                    "with reinit); None = lr", range="(0, 10]")
    schedule: str = option("onecycle", "learning rate over each round's steps: onecycle "
                           "(warm-up, cosine anneal to ~0), linear (warm-up, linear decay to "
                           "0), constant", choices=SCHEDULES)
    warmup: float = option(0.15, "share of each round's steps spent warming up (onecycle, "
                           "linear)", range="[0, 1)")
    weight_decay: float = option(0.0, "decoupled weight decay (AdamW) or L2 penalty (SGD)",
                                 range=">= 0")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy, share of the "
                                    "target spread over all classes", range="[0, 1)")
    shift: int = option(0, "random translation of every training image by up to this many px "
                        "(random crop of the image padded with black by this many px)",
                        range="[0, 8]")
    flip: bool = option(False, "random horizontal flip of half the training images, and at "
                        "test time the mean logits of each image and its mirror image (natural "
                        "images; not for digits)")
    tta_shift: int = option(0, "test-time augmentation: also average each image translated by "
                            "this many px up-left and down-right (reflect padding; with their "
                            "mirror images when flip), weighted one half against the "
                            "untranslated views; wherever the classifier scores (evaluation, "
                            "screening of inverted images, fitted scores, exported detectors), "
                            "never in training; 3x the cost of those passes; 0 = off",
                            range="[0, 4]")
    reinit: bool = option(False, "retrain from scratch each round instead of fine-tuning")


@dataclass(frozen=True)
class InversionConfig(_Section):
    """The conditional generator and the network-inversion loss it is trained with.

    Loss = alpha_kl * KL(P || Q) + beta_ce * CE(Q, argmax P) + gamma_cosine * cosine
    + delta_ortho * orthogonality, plus the image priors feature_stats * R_feature + tv * R_TV
    + l2 * R_l2 + diversity * R_div, each off at weight 0 (see :mod:`netinv.inversion`).
    """

    SECTION: ClassVar[str] = "inversion"
    TITLE: ClassVar[str] = "the conditional generator and its network-inversion loss"
    WEIGHTS: ClassVar[tuple[str, ...]] = ("alpha_kl", "beta_ce", "gamma_cosine", "delta_ortho")

    conditioning: str = option("label", "how the generator is told the class",
                               choices=CONDITIONINGS)
    latent_dim: int = option(64, "size of the noise vector z", range="[1, 1024]")
    width: int = option(16, "channels of the generator's last up-convolution", range="[4, 256]")
    dropout: float = option(0.5, "dropout after each up-convolution", range="[0, 1)")
    lr: float = option(3e-3, "Adam learning rate", range="(0, 1]")
    steps: int = option(200, "generator optimisation steps per round", range=">= 1")
    batch_size: int = option(64, "images per generator step (cosine/ortho need pairs)",
                             range=">= 2")
    samples_per_round: int = option(2000, "inverted images offered to the garbage class per "
                                    "round", range=">= 1")
    warm_start: bool = option(True, "keep the generator between rounds instead of a fresh one")
    alpha_kl: float = option(1.0, "weight of KL(P || Q), unitless", range=">= 0")
    beta_ce: float = option(1.0, "weight of CE(Q, argmax P), unitless", range=">= 0")
    gamma_cosine: float = option(0.1, "weight of the mean pairwise feature cosine similarity",
                                 range=">= 0")
    delta_ortho: float = option(0.1, "weight of the feature Gram matrix's distance to I",
                                range=">= 0")
    feature_stats: float = option(0.0, "weight of the BatchNorm input-statistics prior "
                                  "(DeepInversion R_feature), unitless; 0 = off", range=">= 0")
    feature_stats_target: str = option("running", "what the BN statistics are matched to: the "
                                       "BN running statistics, or those of ID train images",
                                       choices=FEATURE_STATS_TARGETS)
    tv: float = option(0.0, "weight of the total-variation prior (anisotropic l1, mean "
                       "|neighbour difference| in pixel units); 0 = off", range=">= 0")
    l2: float = option(0.0, "weight of the pixel l2 prior (mean squared normalised pixel); "
                       "0 = off", range=">= 0")
    diversity: float = option(0.0, "weight of the mode-seeking term (pairs sharing the "
                              "conditioning), unitless; 0 = off", range=">= 0")
    arch: str = option("transposed", "generator body: transposed convolutions, or nearest "
                       "upsampling + 3x3 convolution (no checkerboard)", choices=GENERATOR_ARCHS)

    def _check_together(self) -> None:
        weights = {name: getattr(self, name) for name in self.WEIGHTS}
        _check(any(w > 0 for w in weights.values()),
               "at least one inversion loss weight must be > 0", **weights)


@dataclass(frozen=True)
class GarbageConfig(_Section):
    """The garbage class: its Gaussian-noise start, which inverted images enter it, its cap.

    The noise is clipped to the valid pixel range (see ``netinv.pipeline.garbage_noise``).
    """

    SECTION: ClassVar[str] = "garbage"
    TITLE: ClassVar[str] = "the garbage class: noise start, which inverted images enter, cap"

    noise_count: int = option(2000, "Gaussian-noise images in the pool before round 1",
                              range=">= 0")
    noise_std: float = option(1.0, "std of that noise in normalised (ID-standardised) units",
                              range="> 0")
    noise_brightness: str = option("uniform", "per-image noise level: uniform in [0, 1] or the "
                                   "ID mean", choices=NOISE_BRIGHTNESS)
    noise_max_scale: int = option(1, "noise grain sizes 1, 2, 4, .. up to this many px",
                                  range="[1, 16]")
    noise_grey: float = option(0.0, "share of the noise images whose channels are all equal "
                               "(grey), so greyscale inputs are covered too; 0 = every "
                               "channel drawn on its own; no effect on 1-channel ID data",
                               range="[0, 1]")
    policy: str = option("all", "which inverted images enter: all; uncertain (UE >= "
                         "ue_threshold); confident (an ID class probability >= "
                         "confidence_threshold); mix (uncertain or confident); none (no "
                         "inversion at all: the control)", choices=EXCLUSION_POLICIES)
    ue_threshold: float = option(0.5, "UE threshold of the uncertain and mix policies",
                                 range="[0, 1]")
    confidence_threshold: float = option(0.9, "top ID-class probability of the confident and "
                                         "mix policies", range="[0, 1]")
    pool_cap: int | None = option(None, "most images the pool keeps (newest win); None = no cap",
                                  range=">= 1")


@dataclass(frozen=True)
class RoundsConfig(_Section):
    """How many train -> invert -> exclude rounds, and where and how they run."""

    SECTION: ClassVar[str] = "rounds"
    TITLE: ClassVar[str] = "how many train -> invert -> exclude rounds, where and how they run"

    count: int = option(3, "train -> invert -> exclude rounds R", range="[1, 100]")
    seed: int = option(0, "seeds data splits, initialisation, noise and batches",
                       range="[0, 2**32)")
    device: str = option("auto", f"{DEVICES} (auto = CUDA if available)")
    amp: bool = option(True, "bf16 autocast where it pays (CUDA, CPUs with AMX, AMD Zen 4 "
                               "and later)")
    eval_batch_size: int | None = option(None, "images per forward pass when scoring; None = "
                                         "by device and body: on CPU 256 (cnn) or 32 (resnet, "
                                         "resnet18), on CUDA 1024", range=">= 1")
    fitted_scores: bool = option(False, "also score knn, layer_stats and fused (energy + knn + "
                                 "layer_stats), fitted each round on 12,000 ID training images "
                                 "(netinv.detector.Detector.fit; one more forward pass over "
                                 "them per round)")
    layer_stats_first: int = option(0, "with fitted_scores: the first convolution (0-based, "
                                    "forward order) whose channel means the layer_stats score "
                                    "uses; the earlier ones are skipped; below the classifier's "
                                    "number of convolutions (" + ", ".join(
                                        f"{arch} {count}" for arch, count
                                        in CLASSIFIER_CONVOLUTIONS.items()) + ")",
                                    range=">= 0")

    def _check_together(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"`rounds/device` must be {DEVICES}", device=self.device)


SECTIONS: dict[str, type[_Section]] = {
    cls.SECTION: cls
    for cls in (DataConfig, ClassifierConfig, InversionConfig, GarbageConfig, RoundsConfig)
}


def config_fields() -> tuple[ConfigField, ...]:
    """Every config field, section by section in declaration order: the one walk that
    ``from_flat``, the CLI's options and the scripts' ``--set`` use."""
    return tuple(spec for cls in SECTIONS.values() for spec in _section_fields(cls))


def config_field(key: str) -> ConfigField:
    """The field of flat key ``"section/name"``.

    Raises:
        KeyError: An unknown key; the message lists the valid keys of that section (or the
            sections, when the section is unknown).
    """
    section, _, name = key.partition("/")
    if section not in SECTIONS:
        raise KeyError(f"unknown config key {key!r}: the section must be one of "
                       f"{', '.join(SECTIONS)} (keys look like 'inversion/alpha_kl').")
    specs = _section_fields(SECTIONS[section])
    for spec in specs:
        if spec.name == name:
            return spec
    valid = ", ".join(spec.key for spec in specs)
    raise KeyError(f"unknown config key {key!r}; valid keys of {section}: {valid}.")


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["inversion/alpha_kl=2", ...]`` (a script's repeated ``--set KEY=VALUE``) as a dict of
    flat keys to strings, for :meth:`Config.from_flat` (which converts the values).

    Raises:
        ValueError: An item without ``=``.
        KeyError: An unknown key (the message lists the valid keys).
    """
    overrides = {}
    for item in items:
        key, equals, value = item.partition("=")
        _check(bool(equals), "`--set` takes KEY=VALUE, e.g. inversion/alpha_kl=2", item=item)
        overrides[config_field(key.strip()).key] = value.strip()
    return overrides


@dataclass(frozen=True)
class Config:
    """A whole run: one frozen section per concern. Defaults are a sensible MNIST run."""

    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    inversion: InversionConfig = field(default_factory=InversionConfig)
    garbage: GarbageConfig = field(default_factory=GarbageConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)

    def __post_init__(self) -> None:
        # rules across sections (each section checks its own fields when it is built)
        convolutions = CLASSIFIER_CONVOLUTIONS[self.classifier.arch]
        _check(self.rounds.layer_stats_first < convolutions,
               f"`rounds/layer_stats_first` must be below the number of convolutions of "
               f"classifier/arch={self.classifier.arch!r} ({convolutions}), i.e. in "
               f"[0, {convolutions - 1}]", layer_stats_first=self.rounds.layer_stats_first)

    @staticmethod
    def keys() -> list[str]:
        """All flat keys ``"section/field"`` a config accepts, in declaration order."""
        return [spec.key for spec in config_fields()]

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
            ValueError: A value out of its allowed range, or not finite.
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
            spec = config_field(key)
            per_section[key.partition("/")[0]][spec.name] = spec.coerce(value)
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
