"""A netinv detector behind pytorch-ood's ``Detector`` interface.

    from netinv.adapters.pytorch_ood import NetinvDetector
    from pytorch_ood.metrics import OODMetrics

    detector = NetinvDetector("mnist", input_normalization=((0.1307,), (0.3081,)))
    metrics = OODMetrics()
    for x, y in loader:  # pytorch-ood's convention: y < 0 marks OOD
        metrics.update(detector(x), y)
    metrics.compute()

The netinv detector carries its own trained classifier, so no ``model`` is passed and nothing
is fitted: ``fit`` and ``fit_features`` return the detector unchanged (``requires_fit`` is
False). ``predict`` takes images (any size and channel count, see
:meth:`netinv.detector.Detector.prepare`); ``predict_features`` takes what netinv's scores are
computed from, the classifier's K = n + 1 logits (garbage last). Both return outlier scores,
higher = more OOD, as pytorch-ood's detectors do.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from netinv.adapters import resolve_detector
from netinv.detector import Detector, Normalization
from netinv.scores import SCORES

try:
    from pytorch_ood.api import Detector as _PytorchOODDetector
except ImportError as err:  # the optional extra is missing
    raise ImportError("netinv.adapters.pytorch_ood needs pytorch-ood: "
                      "pip install 'netinv-study[pytorch-ood]'") from err


class NetinvDetector(_PytorchOODDetector):
    """pytorch-ood ``Detector`` scoring with a netinv (n+1)-class detector.

    Args:
        detector: A :class:`~netinv.detector.Detector`, a detector file, or a preset name
            (``"mnist"``, ``"fashionmnist"``, ``"cifar10"``).
        score: One of :data:`netinv.scores.SCORES`, or ``"knn"``, ``"layer_stats"`` or
            ``"fused"`` for a fitted detector (:meth:`~netinv.detector.Detector.fit`); None =
            the detector's own.
        input_normalization: ``(mean, std)`` the loader's float batches were normalised with
            (``transforms.Normalize``), undone before the detector's own; None = float batches
            in [0, 1] or uint8 pixels. Only used when ``detector`` is a file or a name (a
            ``Detector`` keeps its own setting).

    Raises:
        TypeError: ``detector`` is none of the three.
        ValueError: An unknown score name, or a file that is not a valid detector.
    """

    requires_fit = False

    def __init__(self, detector: Detector | str | os.PathLike, *, score: str | None = None,
                 input_normalization: Normalization | None = None) -> None:
        self.netinv, self.score = resolve_detector(detector, score, input_normalization)

    def fit(self, data_loader: Any = None) -> NetinvDetector:
        """No fitting: the netinv detector is trained already. Returns self."""
        return self

    def fit_features(self, x: Tensor | None = None, y: Tensor | None = None) -> NetinvDetector:
        """No fitting: the netinv detector is trained already. Returns self."""
        return self

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Outlier scores of images ``x`` (B, C, H, W), shape (B,), on ``x``'s device;
        higher = more OOD."""
        return self.netinv.score(x, score=self.score).to(x.device)

    @torch.no_grad()
    def predict_features(self, x: Tensor) -> Tensor:
        """Outlier scores from the classifier's logits ``x`` (B, K), K = n + 1 (garbage last),
        e.g. ``netinv.logits(images)``; shape (B,), higher = more OOD.

        Raises:
            ValueError: ``x`` is not (B, K) with K the detector's class count + 1, or the
                score is not a logit score (``"knn"``, ``"layer_stats"``, ``"fused"`` need the
                images: :meth:`predict`).
        """
        if self.score not in SCORES:
            raise ValueError(f"score {self.score!r} needs the images, not the logits: call "
                             f"predict(images) instead of predict_features(logits).")
        k = len(self.netinv.classes) + 1
        if x.dim() != 2 or x.shape[1] != k:
            raise ValueError(f"features must be the classifier's logits shaped (B, {k}), got "
                             f"shape={tuple(x.shape)}.")
        return SCORES[self.score](x.float())

    predict_logits = predict_features  # the same input under pytorch-ood's logits name
