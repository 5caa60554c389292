"""A netinv detector behind OpenOOD's postprocessor interface.

OpenOOD (v1.5) evaluates a postprocessor by calling ``setup(net, id_loader_dict,
ood_loader_dict)`` once, then ``inference(net, data_loader)`` per split, which calls
``postprocess(net, data) -> (pred, conf)`` per batch; a higher ``conf`` means *more ID*
(OpenOOD negates it when OOD is the positive class). ``NetinvPostprocessor`` provides these
three with the same arguments and return types, so it can be handed to OpenOOD's ``Evaluator``
as ``postprocessor=``; OpenOOD itself is not imported.

    from netinv.adapters.openood import NetinvPostprocessor
    postprocessor = NetinvPostprocessor("mnist", input_normalization=((0.1307,), (0.3081,)))
    pred, conf, label = postprocessor.inference(net, loader)  # batches {"data", "label"}

``net`` is accepted for the interface and not used: the netinv detector scores with its own
classifier. OpenOOD's loaders hand out normalised batches; pass that normalisation as
``input_normalization``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from netinv.adapters import resolve_detector
from netinv.detector import Detector, Normalization


class NetinvPostprocessor:
    """OpenOOD-style postprocessor: ``conf = -score`` (higher = more ID), ``pred`` the argmax
    over the n ID classes.

    Args:
        detector: A :class:`~netinv.detector.Detector`, a detector file, or a preset name.
        config: OpenOOD's postprocessor config; kept as ``self.config``, not read.
        score: One of :data:`netinv.scores.SCORES`, or ``"knn"``, ``"layer_stats"`` or
            ``"fused"`` for a fitted detector (:meth:`~netinv.detector.Detector.fit`); None =
            the detector's own.
        input_normalization: ``(mean, std)`` of the loader's normalisation (see
            :class:`~netinv.detector.Detector`); used when ``detector`` is a file or a name.

    Raises:
        TypeError: ``detector`` is none of the three.
        ValueError: An unknown score name, or a file that is not a valid detector.
    """

    APS_mode = False  # OpenOOD's evaluator reads this: no hyperparameter search to run

    def __init__(self, detector: Detector | str | os.PathLike, config: Any = None, *,
                 score: str | None = None,
                 input_normalization: Normalization | None = None) -> None:
        self.detector, self.score = resolve_detector(detector, score, input_normalization)
        self.config = config

    def setup(self, net: nn.Module, id_loader_dict: Mapping[str, Any],
              ood_loader_dict: Mapping[str, Any]) -> None:
        """Nothing to fit: the netinv detector is trained already."""

    @torch.no_grad()
    def postprocess(self, net: nn.Module, data: Tensor) -> tuple[Tensor, Tensor]:
        """(pred, conf) of a batch ``data`` (B, C, H, W): pred int64 (B,), the ID class with
        the highest logit; conf float32 (B,), minus the OOD score (higher = more ID)."""
        logits, scores = self.detector.logits_and_scores(data, [self.score])  # B, K; B
        scores = scores[self.score]
        pred = logits[:, :-1].argmax(dim=1)  # ID classes only: OpenOOD scores ID accuracy
        conf = -scores
        return pred.to(data.device), conf.to(data.device)

    def inference(self, net: nn.Module, data_loader: Iterable[Mapping[str, Tensor]],
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``postprocess`` over a loader of ``{"data": (B, C, H, W), "label": (B,)}`` batches.

        Returns:
            (pred int (N,), conf float (N,), label int (N,)) numpy arrays, as OpenOOD's.
        """
        preds, confs, labels = [], [], []
        for batch in data_loader:
            pred, conf = self.postprocess(net, batch["data"])
            preds.append(pred.cpu())
            confs.append(conf.cpu())
            labels.append(torch.as_tensor(batch["label"]).cpu())
        return (torch.cat(preds).numpy().astype(int), torch.cat(confs).numpy(),
                torch.cat(labels).numpy().astype(int))
