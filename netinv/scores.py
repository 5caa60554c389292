"""OOD scores over an (n+1)-class softmax; higher = more likely OOD, for every score.

All scores take the classifier's logits over K = n + 1 classes, the last being the garbage class,
and return one number per image. ``SCORES`` maps each name to its function; it is the only
registry of logit scores in the project. ``FITTED_SCORES`` names the scores that also need
statistics of ID training images (:meth:`netinv.detector.Detector.fit`; computed in a run with
``rounds/fitted_scores``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from netinv.knn import KNN
from netinv.layer_stats import LAYER_STATS


def ue(logits: Tensor) -> Tensor:
    """Uncertainty estimate over all K = n + 1 classes; higher = more likely OOD.

    .. math:: UE = 1 - \\frac{\\sum_i (p_i - 1/K)^2}{\\sum_i (\\hat y_i - 1/K)^2}

    with p the softmax and yhat the one-hot of argmax p (the seed project's estimate).

    Args:
        logits: Shape (B, K), K >= 2.

    Returns:
        Shape (B,), values in [0, 1]. A confident garbage prediction scores about 0;
        use :func:`ue_tiered` when that case must rank as OOD.
    """
    probs = logits.float().softmax(dim=1)
    k = probs.shape[1]
    spread = (probs - 1.0 / k).pow(2).sum(dim=1)
    one_hot_spread = (1.0 - 1.0 / k) ** 2 + (k - 1) * (1.0 / k) ** 2  # same for every row
    return (1.0 - spread / one_hot_spread).clamp(0.0, 1.0)


def ue_tiered(logits: Tensor) -> Tensor:
    """The papers' two-tier rule as one number; higher = more likely OOD.

    Predicted garbage (argmax = K - 1) scores ``1 + p_garbage`` (above every UE, ordered by
    confidence); any other prediction scores its :func:`ue` in [0, 1].

    Returns:
        Shape (B,), values in [0, 2].
    """
    probs = logits.float().softmax(dim=1)
    garbage = probs.argmax(dim=1) == probs.shape[1] - 1
    return torch.where(garbage, 1.0 + probs[:, -1], ue(logits))


def msp(logits: Tensor) -> Tensor:
    """One minus the largest ID softmax probability, ``1 - max_{i<n} p_i``; higher = more OOD.

    The softmax runs over all K classes, so mass on the garbage class counts against ID.

    Returns:
        Shape (B,), values in [0, 1).
    """
    return 1.0 - logits.float().softmax(dim=1)[:, :-1].max(dim=1).values


def p_garbage(logits: Tensor) -> Tensor:
    """Softmax probability of the garbage class, ``p_n``; higher = more likely OOD.

    Returns:
        Shape (B,), values in [0, 1].
    """
    return logits.float().softmax(dim=1)[:, -1]


def energy(logits: Tensor, *, temperature: float = 1.0) -> Tensor:
    """Negative free energy over the n ID logits (Liu et al. 2020); higher = more likely OOD.

    .. math:: E(x) = -T \\log \\sum_{i<n} e^{f_i(x) / T}

    Args:
        logits: Shape (B, K); the garbage logit is left out.
        temperature: T > 0.

    Returns:
        Shape (B,), unbounded; equals minus T times the log-sum-exp of the ID logits.
    """
    return -temperature * torch.logsumexp(logits.float()[:, :-1] / temperature, dim=1)


SCORES: dict[str, Callable[[Tensor], Tensor]] = {
    "ue": ue,
    "ue_tiered": ue_tiered,
    "msp": msp,
    "p_garbage": p_garbage,
    "energy": energy,
}


FUSED = "fused"  # energy (or another logit score) + knn + layer_stats, each standardised
FITTED_SCORES = (KNN, LAYER_STATS, FUSED)


def score_all(logits: Tensor) -> dict[str, Tensor]:
    """Every score in :data:`SCORES` for one batch of logits (B, K): name -> (B,) float32."""
    return {name: fn(logits) for name, fn in SCORES.items()}
