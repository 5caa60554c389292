"""netinv.adapters.pytorch_ood against the real pytorch-ood package: the interface, and its
OODMetrics on the adapter's scores agree with netinv's own metrics."""

from __future__ import annotations

import pytest
import torch
from pytorch_ood.api import Detector as PytorchOODDetector
from pytorch_ood.metrics import OODMetrics

from netinv.adapters.pytorch_ood import NetinvDetector
from netinv.detector import Detector
from netinv.metrics import ood_metrics
from tests.netinv.adapters.conftest import MNIST_NORM


def test_is_a_pytorch_ood_detector_that_needs_no_fit(loaders: dict) -> None:
    detector = NetinvDetector("mnist", input_normalization=MNIST_NORM)
    assert isinstance(detector, PytorchOODDetector) and not detector.requires_fit
    assert detector.fit(loaders["mnist"]) is detector
    assert detector.fit_features(torch.zeros(3, 11), torch.zeros(3)) is detector
    assert detector.to("cpu") is detector


def test_scores_agree_with_netinv_and_pytorch_ood_metrics(loaders: dict, pixels: dict) -> None:
    adapter = NetinvDetector("mnist", input_normalization=MNIST_NORM).fit(loaders["mnist"])
    metrics = OODMetrics()
    scores = {}
    for name, sign in (("mnist", 1), ("fashionmnist", -1)):  # pytorch-ood: label < 0 is OOD
        parts = []
        for x, y in loaders[name]:
            s = adapter(x)  # __call__ -> predict
            metrics.update(s, sign * (y + 1))
            parts.append(s)
        scores[name] = torch.cat(parts)
    plain = Detector.load("mnist")  # the same detector scoring the raw uint8 pixels
    assert torch.equal(scores["mnist"], plain(pixels["mnist"][0]))
    theirs = metrics.compute()
    ours = ood_metrics(scores["mnist"], scores["fashionmnist"])
    assert theirs["AUROC"] == pytest.approx(ours["auroc"], abs=1e-6)
    assert ours["auroc"] > 0.8  # the preset separates MNIST from FashionMNIST


def test_predict_features_scores_the_logits(pixels: dict) -> None:
    adapter = NetinvDetector(Detector.load("mnist"), score="msp")
    images = pixels["fashionmnist"][0][:64]
    logits = adapter.netinv.logits(images)  # (64, 11)
    assert torch.equal(adapter.predict_features(logits), adapter.predict(images))
    assert torch.equal(adapter.predict_logits(logits), adapter.predict(images))
    with pytest.raises(ValueError, match=r"logits shaped \(B, 11\), got shape=\(64, 10\)"):
        adapter.predict_features(logits[:, :10])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"got type=int"):
        NetinvDetector(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`score` must be one of .*got score='odin'"):
        NetinvDetector("mnist", score="odin")


@pytest.mark.parametrize("score", ["knn", "layer_stats", "fused"])
def test_a_fitted_detector_scores_images_not_logits(pixels: dict, score: str) -> None:
    detector = Detector.load("mnist").fit(pixels["mnist"][0][:250], k=5)
    adapter = NetinvDetector(detector, score=score)
    images = pixels["fashionmnist"][0][:16]
    assert torch.equal(adapter.predict(images), detector(images, score=score))
    with pytest.raises(ValueError, match=r"call predict\(images\)"):
        adapter.predict_features(detector.logits(images))
