"""netinv.presets: every shipped preset builds a valid Config; unknown names are refused."""

from __future__ import annotations

import pytest
import torch

from netinv.config import Config
from netinv.presets import PRESETS, get_preset, preset_detector_path


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_valid_config(name: str) -> None:
    config = Config.from_flat(get_preset(name))
    assert config.data.id == name  # presets are named after their ID set
    assert config.data.id not in config.data.ood


def test_get_preset_returns_a_copy() -> None:
    preset = get_preset("mnist")
    preset["data/ood"].append("svhn")
    preset["rounds/count"] = 99
    assert get_preset("mnist") == PRESETS["mnist"]


def test_unknown_preset_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"`preset` must be one of mnist, fashionmnist.*"
                                         r"got preset='cifar'"):
        get_preset("cifar")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_detector_loads(name: str) -> None:
    from netinv.detector import Detector

    path = preset_detector_path(name)
    assert path.is_file(), f"{path} is missing: scripts/results.py run {name} exports it"
    detector = Detector.load(path)
    assert detector.config["data/id"] == name
    # small enough to commit: at most a dozen MB, with the fitted scores' 10,000-image feature
    # bank (float16, 5.1 MB for the width-32 CIFAR-10 ResNet's 256 features, beside its 1.6
    # million float32 weights) where the preset has them
    assert path.stat().st_size < 13_000_000
    # it scores raw images of another size and channel count (RGB 32x32): one finite score
    # per image, and predicts a class name or "garbage"
    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    scores = detector.score(images)
    assert scores.shape == (8,) and torch.isfinite(scores).all()
    assert set(detector.predict(images)) <= {*detector.classes, "garbage"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_detector_was_trained_with_the_preset(name: str) -> None:
    from netinv.detector import Detector

    detector = Detector.load(preset_detector_path(name))
    trained = Config.from_flat(detector.config).to_flat()
    # where and how the scores are chunked is not training: the detectors were saved with
    # rounds/eval_batch_size 2048, the default is now by device
    for key, value in Config.from_flat(get_preset(name)).to_flat().items():
        if key not in ("data/root", "rounds/device", "rounds/seed", "rounds/eval_batch_size"):
            assert trained[key] == value, f"netinv/presets/{name}.pt has {key}={trained[key]!r}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_detector_separates_its_id_test_set_from_ood(name: str, data_root) -> None:
    from netinv.data import load_split
    from netinv.detector import Detector
    from netinv.metrics import ood_metrics

    detector = Detector.load(preset_detector_path(name))
    id_test = load_split(name, "test", root=data_root, download=False).images[:2000]
    other = get_preset(name)["data/ood"][0]  # the near-OOD set (MNIST <-> FashionMNIST)
    ood_test = load_split(other, "test", root=data_root, download=False).images[:2000]
    metrics = ood_metrics(detector.score(id_test), detector.score(ood_test))
    assert metrics["auroc"] > 0.8, metrics
    predicted = detector.predict(id_test[:500])
    assert sum(c != "garbage" for c in predicted) > 450  # ID images keep their classes
