"""netinv.adapters.openood through OpenOOD's postprocessor contract (tests/helpers/
openood_contract.py: OpenOOD is not on PyPI): conf = -score, OpenOOD's metrics equal netinv's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from netinv.adapters.openood import NetinvPostprocessor
from netinv.detector import Detector
from netinv.metrics import ood_metrics
from tests.helpers.openood_contract import openood_metrics
from tests.netinv.adapters.conftest import MNIST_NORM


def _dict_batches(loader: DataLoader) -> list[dict[str, torch.Tensor]]:
    """OpenOOD's loaders yield {"data", "label"} dicts."""
    return [{"data": x, "label": y} for x, y in loader]


def test_openood_metrics_equal_netinv_metrics(loaders: dict, pixels: dict) -> None:
    post = NetinvPostprocessor("mnist", input_normalization=MNIST_NORM)
    id_loader = _dict_batches(loaders["mnist"])
    ood_loader = _dict_batches(loaders["fashionmnist"])
    theirs = openood_metrics(post, None, id_loader, ood_loader)
    plain = Detector.load("mnist")
    ours = ood_metrics(plain(pixels["mnist"][0]), plain(pixels["fashionmnist"][0]))
    assert theirs["auroc"] == pytest.approx(ours["auroc"], abs=1e-6)
    assert theirs["auroc"] > 0.8
    assert theirs["acc"] > 0.9  # pred is the ID class: MNIST test accuracy


def test_postprocess_gives_pred_and_conf(pixels: dict) -> None:
    post = NetinvPostprocessor(Detector.load("mnist"), {"name": "netinv"}, score="energy")
    images = pixels["mnist"][0][:32]
    pred, conf = post.postprocess(None, images)
    assert pred.shape == conf.shape == (32,) and pred.dtype == torch.int64
    assert torch.equal(conf, -post.detector(images, score="energy"))  # higher = more ID
    assert int(pred.max()) < 10  # never the garbage class
    assert post.config == {"name": "netinv"}


def test_inference_returns_numpy_like_openood(loaders: dict) -> None:
    post = NetinvPostprocessor("mnist", input_normalization=MNIST_NORM)
    pred, conf, label = post.inference(None, _dict_batches(loaders["mnist"]), progress=False)
    assert pred.shape == conf.shape == label.shape == (500,)
    assert pred.dtype.kind == "i" and label.dtype.kind == "i" and conf.dtype == np.float32


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"got type=list"):
        NetinvPostprocessor([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got score='react'"):
        NetinvPostprocessor("mnist", score="react")


@pytest.mark.parametrize("score", ["knn", "layer_stats", "fused"])
def test_a_fitted_detector_postprocesses_with_one_pass(pixels: dict, score: str) -> None:
    detector = Detector.load("mnist").fit(pixels["mnist"][0][:250], k=5)
    with pytest.raises(ValueError, match=rf"score='{score}' needs statistics of ID training"):
        NetinvPostprocessor(Detector.load("mnist"), score=score)
    post = NetinvPostprocessor(detector, score=score)
    images = pixels["fashionmnist"][0][:16]
    pred, conf = post.postprocess(None, images)
    assert torch.equal(conf, -detector(images, score=score))
    assert torch.equal(pred, detector.logits(images)[:, :-1].argmax(dim=1))
