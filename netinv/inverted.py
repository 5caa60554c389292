"""A round's inverted samples: which of them enter the garbage pool, and how they are measured.

:func:`select` applies ``garbage/policy`` to the current classifier's logits on the samples;
:func:`pairwise_diversity` and :func:`frechet_distance` are the per-round measures that
:func:`netinv.pipeline.run_rounds` records (``inverted_*`` fields of
:data:`netinv.records.RECORD_FIELDS`), all on the classifier that was inverted, before it is
retrained.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from netinv.config import EXCLUSION_POLICIES
from netinv.inference import predict_outputs
from netinv.scores import ue

INVERTED_MEASURES = ("inverted_diversity_features", "inverted_diversity_pixels",
                     "inverted_frechet")  # the record fields of :func:`measure`


def select(logits: Tensor, policy: str, *, ue_threshold: float,
           confidence_threshold: float) -> Tensor:
    """Which inverted samples enter the garbage pool under ``policy``.

    - ``all``: every sample.
    - ``uncertain``: UE >= ``ue_threshold`` (TIE; a sample the classifier already calls garbage
      scores UE ~ 0 and is not needed).
    - ``confident``: the top ID-class probability max_{i<n} p_i >= ``confidence_threshold``: the
      classifier's false-positive region, which retraining should move.
    - ``mix``: the union of ``uncertain`` and ``confident``: everything except what the
      classifier neither accepts confidently nor hesitates on (mostly what it already calls
      garbage).
    - ``none``: no sample (the control without inversion).

    Args:
        logits: The current classifier's logits on the samples, (N, K), K = n + 1.
        policy: One of ``netinv.config.EXCLUSION_POLICIES``.
        ue_threshold: UE in [0, 1].
        confidence_threshold: Probability in [0, 1].

    Returns:
        Boolean mask (N,).
    """
    if policy not in EXCLUSION_POLICIES:
        raise ValueError(f"`policy` must be one of {', '.join(EXCLUSION_POLICIES)}, got "
                         f"policy={policy!r}.")
    keep_all = torch.ones(len(logits), dtype=torch.bool, device=logits.device)
    if policy in ("all", "none"):
        return keep_all if policy == "all" else ~keep_all
    uncertain = ue(logits) >= ue_threshold
    confident = logits.float().softmax(dim=1)[:, :-1].max(dim=1).values >= confidence_threshold
    return {"uncertain": uncertain, "confident": confident, "mix": uncertain | confident}[policy]


def pairwise_diversity(x: Tensor, labels: Tensor) -> float:
    """Mean Euclidean distance between distinct samples sharing a label, averaged over labels.

    Args:
        x: (N, ...) samples (features or images; flattened per sample).
        labels: (N,) their labels; labels with fewer than 2 samples are skipped.

    Returns:
        >= 0; 0 when every label's samples are identical; NaN when no label has 2 samples.
    """
    flat = x.reshape(len(x), -1).double()
    means = []
    for label in labels.unique():
        group = flat[labels == label]
        if len(group) < 2:
            continue
        dist = torch.cdist(group, group)  # M, M
        means.append(dist.sum() / (len(group) * (len(group) - 1)))
    return float(torch.stack(means).mean()) if means else float("nan")


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (as FID does):

    .. math:: \\|\\mu_a - \\mu_b\\|^2 + \\mathrm{tr}(\\Sigma_a + \\Sigma_b
              - 2 (\\Sigma_a \\Sigma_b)^{1/2})

    Args:
        a: (N, F) features, N >= 2.
        b: (M, F) features, M >= 2.

    Returns:
        >= 0 (up to rounding); ~0 for identical sets.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"`a` and `b` must be (N, F) and (M, F) with N, M >= 2, got "
                         f"a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}.")
    xa, xb = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = xa.mean(axis=0), xb.mean(axis=0)
    cov_a, cov_b = np.cov(xa, rowvar=False), np.cov(xb, rowvar=False)
    with warnings.catch_warnings():  # ReLU features leave singular covariances; sqrtm copes
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root  # rounding leaves tiny imaginary parts
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root))
    return max(value, 0.0)


def logits_and_features(classifier: torch.nn.Module, images: Tensor, *,
                        batch_size: int | None, amp: bool) -> tuple[Tensor, Tensor]:
    """Logits (N, K) and penultimate features (N, F), float32, of normalised float images
    (N, C, H, W), in chunks of ``batch_size`` (None = by device), through the classifier's
    batch-norm-folded inference copy (:func:`netinv.inference.predict_outputs`)."""
    out = predict_outputs(classifier, images, normalize=None, batch_size=batch_size, amp=amp,
                          features=True)
    assert out.features is not None  # asked for
    return out.logits, out.features


def measure(images: Tensor, labels: Tensor, features: Tensor, id_features: Tensor
            ) -> dict[str, float]:
    """A round's measures of its inverted samples (before selection), as record fields.

    Args:
        images: The samples in pixel space, (N, C, H, W).
        labels: Their conditioned labels, (N,).
        features: Their penultimate features under the inverted classifier, (N, F).
        id_features: That classifier's features of the ID validation images, (M, F).

    Returns:
        ``inverted_diversity_features``, ``inverted_diversity_pixels``, ``inverted_frechet``.
    """
    values = (pairwise_diversity(features, labels), pairwise_diversity(images, labels),
              frechet_distance(features, id_features))
    return dict(zip(INVERTED_MEASURES, values))
