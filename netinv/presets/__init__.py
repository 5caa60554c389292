"""Named configurations found by the studies, for ``python -m netinv --preset NAME`` and
``python -m study.launch --preset NAME``, and the detectors trained with them.

A preset is a dict of flat config overrides on top of the defaults (``Config.from_flat``). The
evidence behind each one, and how to reproduce it, is in ``docs/results.md``. Each preset's
exported detector (seed 0) ships as package data, ``netinv/presets/<name>.pt``, so it loads by
name from a clone and from an installed wheel alike:

    from netinv import Config, Detector
    from netinv.presets import get_preset
    config = Config.from_flat(get_preset("mnist"))
    detector = Detector.load("mnist")  # = Detector.load(preset_detector_path("mnist"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PRESETS_DIR = Path(__file__).resolve().parent  # where the shipped <name>.pt detectors live

PRESETS: dict[str, dict[str, Any]] = {
    # MNIST as ID: study mnist-refine, trial 2 at round 3, the best of the study's top 3 on
    # validation over seeds 0-2 (docs/results.md)
    "mnist": {
        "data/id": "mnist",
        "data/ood": ["fashionmnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48,
        "classifier/epochs": 4,
        "classifier/shift": 1,
        "inversion/samples_per_round": 1646,
        "inversion/gamma_cosine": 0.07482796037620795,
        "inversion/delta_ortho": 0.2484633816898239,
        "garbage/noise_count": 4000,
        "garbage/noise_max_scale": 8,
        "garbage/policy": "uncertain",
        "garbage/ue_threshold": 0.35178704132817173,
        "rounds/count": 3,
    },
    # FashionMNIST as ID: study fashionmnist-refine, trial 3 at round 2, the best of the study's
    # top 3 on validation over seeds 0-2 (docs/results.md). MNIST as OOD is the hard case: more
    # and coarser noise is what helped. Then the inversion ablation's last variant (issue 14:
    # BatchNorm-statistics prior with ID targets, total variation, mode seeking, policy mix,
    # upsample body), first on validation by the preset rule over seeds 0-2; then a third round
    # and 8,000 inverted images per round, first on validation over seeds 0-2 against the same
    # variant with 2,473 images and with 2 rounds; then without the orthogonality term (the
    # paper's three losses plus the priors), first on validation over seeds 0-2 again
    # (docs/results.md, inversion ablation)
    "fashionmnist": {
        "data/id": "fashionmnist",
        "data/ood": ["mnist", "cifar10", "tinyimagenet"],
        "classifier/width": 48,
        "classifier/epochs": 2,
        "inversion/samples_per_round": 8000,
        "inversion/gamma_cosine": 0.03210577849550396,
        "inversion/delta_ortho": 0.0,
        "inversion/feature_stats": 10.0,
        "inversion/feature_stats_target": "id",
        "inversion/tv": 1.0,
        "inversion/diversity": 0.01,
        "inversion/arch": "upsample",
        "garbage/noise_count": 16000,
        "garbage/noise_max_scale": 16,
        "garbage/policy": "mix",
        "garbage/ue_threshold": 0.2,
        "garbage/confidence_threshold": 0.9,
        "rounds/count": 3,
    },
    # CIFAR-10 (JPEG) as ID (issue 11): ResNet-9 at width 32 with the fast-CIFAR-10 recipe
    # (SGD + Nesterov, triangular schedule, label smoothing 0.2, 2 px crop, flips; flip and
    # 1 px translate test-time augmentation, airbench's), 20 epochs in round 0 (40 to 50
    # minutes on 2 CPU cores); later rounds fine-tune for 2 epochs at a tenth of the rate. Width 16
    # at 14 epochs, the first preset (the study's pick), stayed near 87% accuracy; width and
    # epochs were raised for the 90% goal on validation accuracy (plain network, seed 0: 89.98%
    # at width 32 and 20 epochs); the translate views are airbench's setting, not tuned here
    # (docs/benchmarks.md, "CIFAR-10 as ID"). Inversion: the fashionmnist preset's
    # priors; policy all, because in study cifar10-inversion the mix policy let no inverted
    # image in (label smoothing 0.2 keeps the top probability below the 0.9 threshold).
    # Fitted scores on: greyscale digits differ from CIFAR-10 most in early layers' statistics,
    # which only layer_stats (and so fused) look at (docs/results.md). Layer statistics from the
    # fourth convolution on: the first three's channel means vary as much within CIFAR-10 as
    # against the OOD sets; f = 3 was chosen on validation splits by
    # scripts/layer_stats_first.py on seed 0's detector (training does not depend on it)
    "cifar10": {
        "data/id": "cifar10",
        "data/ood": ["mnist", "fashionmnist", "tinyimagenet"],
        "classifier/arch": "resnet",
        "classifier/width": 32,
        "classifier/optimizer": "sgd",
        "classifier/first_lr": 0.2,
        "classifier/lr": 0.02,
        "classifier/weight_decay": 5e-4,
        "classifier/batch_size": 256,
        "classifier/schedule": "linear",
        "classifier/warmup": 0.2,
        "classifier/label_smoothing": 0.2,
        "classifier/shift": 2,
        "classifier/flip": True,
        "classifier/first_epochs": 20,
        "classifier/epochs": 2,
        "classifier/tta_shift": 1,
        "inversion/width": 32,
        "inversion/samples_per_round": 2500,
        "inversion/feature_stats": 10.0,
        "inversion/feature_stats_target": "id",
        "inversion/tv": 1.0,
        "inversion/diversity": 0.01,
        "inversion/arch": "upsample",
        "garbage/noise_count": 5000,
        "garbage/noise_max_scale": 8,
        "garbage/policy": "all",
        "rounds/count": 2,
        "rounds/fitted_scores": True,
        "rounds/layer_stats_first": 3,
    },
}


def _check_name(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"`preset` must be one of {', '.join(PRESETS)}, got preset={name!r}.")


def get_preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s flat overrides.

    Raises:
        ValueError: Unknown name; the message lists the presets.
    """
    _check_name(name)
    return {key: list(value) if isinstance(value, list) else value
            for key, value in PRESETS[name].items()}


def preset_detector_path(name: str) -> Path:
    """The shipped detector file of preset ``name`` (``netinv/presets/<name>.pt``, package data).

    Raises:
        ValueError: Unknown name; the message lists the presets.
    """
    _check_name(name)
    return PRESETS_DIR / f"{name}.pt"
