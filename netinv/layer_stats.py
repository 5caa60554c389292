"""The layer-statistics score: how far an image's per-layer channel means lie from those of ID
training images, a Mahalanobis distance per convolution, averaged over the layers.

Why: the logit scores and KNN see only the last layer, where a CIFAR-10 classifier maps a
greyscale digit close to some class. Far-OOD images differ most in low-level statistics, which
the channel means of early and middle layers capture (Lee et al., NeurIPS 2018, "feature
ensemble"; Sastry & Oore, ICML 2020, use higher-order statistics). They are the statistics the
inversion's BatchNorm prior (``inversion/feature_stats``) pulls inverted images toward, so the
garbage class learns what this score does not look at: the two are complementary.

For layer l with C_l channels, ``m_l(x)`` is the spatial mean of the convolution's output (C_l,).
Fitted on ID training images: a centre ``mu_l`` and a covariance ``S_l`` shrunk toward its mean
diagonal (``SHRINKAGE``), so d_l(x) = (m_l - mu_l)^T S_l^-1 (m_l - mu_l). Each d_l is divided by
its median over held-out ID images (every layer counts alike, whatever its width), and the score
is the log of their mean over layers: higher = more likely OOD, as every score in
:mod:`netinv.scores`. The layers are the convolutions from the ``first`` on (0-based, forward
order; ``rounds/layer_stats_first``): on the shipped CIFAR-10 ResNet-9, skipping the two at
full resolution, or those and the first residual convolution, raised the fused score's
validation AUROC on every OOD set, and validation picks three (``scripts/layer_stats_first.py``,
docs/results.md).

A convolution followed by a batch norm is hooked at its output; with the batch norm folded in
(:func:`netinv.inference.inference_copy`) that output changes by a per-channel affine map,
which leaves a Mahalanobis distance unchanged but for the small isotropic shrinkage (fit and
scoring both run the folded copy, so they agree).

Like KNN it needs ID training images, so it lives on :class:`netinv.detector.Detector`
(``fit``, then ``score(images, score="layer_stats")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from netinv.models import tta_mean

LAYER_STATS = "layer_stats"  # the score's name, next to netinv.scores.SCORES and "knn"
SHRINKAGE = 1e-3  # covariance + SHRINKAGE * mean(diag) * I: invertible for any bank size


class ChannelMeans:
    """Record the per-image channel means of every ``nn.Conv2d`` output of ``model`` while in a
    ``with`` block; :meth:`take` returns those of the forward passes since the last call.

    A model with test-time augmentation (``tta_views``: its mirror image, translated views)
    runs V B images for a batch of B; :meth:`take` combines the V views as the model does its
    logits and features (:func:`~netinv.models.tta_mean`).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        self._chunks: list[list[Tensor]] = [[] for _ in self.convs]
        self._handles: list = []

    def __enter__(self) -> ChannelMeans:
        self._clear()
        for conv, chunks in zip(self.convs, self._chunks):
            self._handles.append(conv.register_forward_hook(self._hook(chunks)))
        return self

    @staticmethod
    def _hook(chunks: list[Tensor]):
        def record(_module: nn.Module, _inputs: object, out: Tensor) -> None:
            # the mean is taken at once: an in-place ReLU after the conv overwrites its output
            chunks.append(out.detach().float().mean((2, 3)))  # B, C_l
        return record

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._clear()

    def _clear(self) -> None:
        for chunks in self._chunks:
            chunks.clear()

    def take(self, batch: int) -> list[Tensor]:
        """Per layer, the (batch, C_l) float32 channel means of the forward passes since the
        last call, which saw ``batch`` images (times the model's test-time views, as its
        ``tta_views`` in the current mode says).

        Raises:
            ValueError: Those passes saw another number of images.
        """
        views = getattr(self.model, "tta_views", (1, 0))
        out = []
        for chunks in self._chunks:
            means = torch.cat(chunks)  # V B, C_l
            chunks.clear()
            if len(means) != sum(views) * batch:
                self._clear()
                raise ValueError(f"the recorded passes saw {len(means)} images, expected "
                                 f"batch={batch} times {sum(views)} test-time views.")
            out.append(tta_mean(means, batch, views) if sum(views) > 1 else means)
        return out


@dataclass
class LayerGaussians:
    """Per layer l: ``centers[l]`` (C_l,), ``precisions[l]`` (C_l, C_l) and ``scales[l]`` > 0,
    the median distance of held-out ID images (all float32 on the CPU); layer l is the
    classifier's convolution ``first + l``."""

    centers: list[Tensor]
    precisions: list[Tensor]
    scales: Tensor  # L
    first: int = 0  # the convolutions before it are not used

    def check(self, widths: list[int] | None = None) -> None:
        """Raise ``ValueError`` unless the parts are finite float tensors of matching shapes,
        scales > 0, ``first`` >= 0, and (when ``widths``, the classifier's convolutions'
        output channels, is given) C_l = ``widths[first + l]`` for every layer up to the last
        convolution."""
        if isinstance(self.first, bool) or not isinstance(self.first, int) or self.first < 0:
            raise ValueError(f"layer statistics' first convolution must be an integer >= 0, "
                             f"got first={self.first!r}.")
        layers = len(self.centers)
        if not (layers == len(self.precisions) == len(self.scales) >= 1):
            raise ValueError(f"layer statistics need one centre, precision and scale per "
                             f"layer, got {layers}, {len(self.precisions)} and "
                             f"{len(self.scales)}.")
        if widths is not None and self.first >= len(widths):
            raise ValueError(f"layer statistics' first convolution first={self.first} is past "
                             f"the classifier's {len(widths)} convolutions.")
        if widths is not None and [len(c) for c in self.centers] != list(widths)[self.first:]:
            raise ValueError(f"layer statistics from convolution {self.first} on must have one "
                             f"layer per convolution of the classifier from there, widths "
                             f"{list(widths)[self.first:]}, got {[len(c) for c in self.centers]}.")
        for layer, (center, precision) in enumerate(zip(self.centers, self.precisions)):
            width = len(center)
            if center.dim() != 1 or tuple(precision.shape) != (width, width):
                raise ValueError(f"layer {layer}: the centre must be (C,) and the precision (C, C), "
                                 f"got {tuple(center.shape)} and {tuple(precision.shape)}.")
        if self.scales.dim() != 1:
            raise ValueError(f"layer scales must be one number per layer (L,), got "
                             f"shape={tuple(self.scales.shape)}.")
        parts = {"centre": self.centers, "precision": self.precisions, "scale": [self.scales]}
        for what, tensors in parts.items():
            for layer, tensor in enumerate(tensors):
                where = "the scales" if what == "scale" else f"layer {layer}'s {what}"
                if tensor.dtype != torch.float32:
                    raise ValueError(f"layer statistics must be float32 tensors, got "
                                     f"dtype={tensor.dtype} in {where}.")
                if not torch.isfinite(tensor).all():
                    raise ValueError(f"layer statistics must be finite, got NaN or inf in "
                                     f"{where}.")
        if not (self.scales > 0).all():
            raise ValueError(f"layer scales must be > 0, got {self.scales.tolist()}.")

    def distances(self, means: list[Tensor]) -> Tensor:
        """(N, L) Mahalanobis distances of channel means (one (N, C) tensor per convolution
        of the classifier, all of them: those before ``first`` are skipped here)."""
        if len(means) != self.first + len(self.centers):
            raise ValueError(f"expected channel means of {self.first + len(self.centers)} "
                             f"convolutions (the classifier's), got {len(means)}.")
        cols = []
        for center, precision, m in zip(self.centers, self.precisions, means[self.first:]):
            diff = m.float().cpu() - center  # N, C_l
            cols.append(((diff @ precision) * diff).sum(1))  # N
        return torch.stack(cols, 1)  # N, L

    def score(self, means: list[Tensor]) -> Tensor:
        """(N,) float32 layer-statistics scores: log of the mean of d_l / scale_l over layers;
        higher = more likely OOD."""
        return (self.distances(means) / self.scales).mean(1).clamp_min(1e-12).log()


def fit_layer_gaussians(bank: list[Tensor], held_out: list[Tensor], *,
                        shrinkage: float = SHRINKAGE, first: int = 0) -> LayerGaussians:
    """Fit the score on channel means of ID training images.

    Args:
        bank: Per convolution of the classifier, (M, C_l) channel means of the images that
            give the centres and covariances; M >= 2.
        held_out: Per convolution, (H, C_l) channel means of other ID images, H >= 1: the
            medians that scale each layer's distance.
        shrinkage: Weight of the mean diagonal added to each covariance, > 0.
        first: The first convolution used, in [0, number of convolutions).

    Raises:
        ValueError: Fewer than 2 bank images or no held-out one, or ``first`` out of range.
    """
    if bank and (isinstance(first, bool) or not isinstance(first, int)
                 or not 0 <= first < len(bank)):
        raise ValueError(f"`first` must be an integer in [0, {len(bank) - 1}] (the "
                         f"classifier's convolutions), got first={first!r}.")
    if not bank or len(bank[0]) < 2 or not held_out or len(held_out[0]) < 1:
        raise ValueError(f"the layer statistics need >= 2 bank images and >= 1 held-out image, "
                         f"got {len(bank[0]) if bank else 0} and "
                         f"{len(held_out[0]) if held_out else 0}.")
    centers, precisions = [], []
    for means in bank[first:]:
        means = means.detach().cpu().double()
        center = means.mean(0)
        diff = means - center
        cov = diff.T @ diff / len(means)
        ridge = shrinkage * cov.diagonal().mean().clamp_min(1e-12)
        precision = torch.linalg.inv(cov + ridge * torch.eye(len(cov), dtype=cov.dtype))
        centers.append(center.float())
        precisions.append(precision.float())
    unscaled = LayerGaussians(centers, precisions, torch.ones(len(centers)), first)
    scales = unscaled.distances([m.detach().cpu() for m in held_out]).median(0).values
    scales = scales.clamp_min(1e-12)
    return LayerGaussians(centers, precisions, scales, first)
