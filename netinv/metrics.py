"""OOD detection metrics with one stated convention.

Scores follow :mod:`netinv.scores`: higher = more likely OOD. Conventions (as in the ODIN and
Energy papers, see design.md):

- ``auroc``: area under the ROC curve separating OOD from ID; symmetric in which side is positive.
- ``aupr_in``: average precision with **ID as the positive class** (ranked by minus the score).
- ``aupr_out``: average precision with **OOD as the positive class** (ranked by the score).
- ``fpr95``: with **ID as the positive class**, the fraction of OOD images accepted as ID at the
  threshold that accepts 95% of ID images (ID accepted when score <= threshold).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

METRIC_NAMES = ("auroc", "aupr_in", "aupr_out", "fpr95")
TPR_LEVEL = 0.95  # share of ID images accepted at the FPR threshold


def _as_numpy(scores: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = scores.detach().cpu().double().numpy() if torch.is_tensor(scores) else np.asarray(
        scores, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape={array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` must be finite, got {int((~np.isfinite(array)).sum())} "
                         f"non-finite values.")
    return array


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = TPR_LEVEL) -> float:
    """Fraction of OOD images accepted as ID when ``tpr`` of ID images are accepted.

    ID is accepted when its score is <= the threshold, the smallest ID score quantile that
    accepts at least ``tpr`` of ID images; ties at the threshold are accepted on both sides.

    Returns:
        A float in [0, 1]; lower is better.
    """
    ranked = np.sort(id_scores)
    threshold = ranked[min(len(ranked) - 1, int(np.ceil(tpr * len(ranked))) - 1)]
    return float((ood_scores <= threshold).mean())


def ood_metrics(id_scores: torch.Tensor | np.ndarray, ood_scores: torch.Tensor | np.ndarray
                ) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR@95TPR of one score on one ID/OOD pair.

    Args:
        id_scores: Scores of ID images, shape (N,), higher = more likely OOD.
        ood_scores: Scores of OOD images, shape (M,).

    Returns:
        ``{"auroc", "aupr_in", "aupr_out", "fpr95"}``, each in [0, 1] (see module docstring).

    Raises:
        ValueError: Either input is empty, not 1-D, or holds NaN/inf.
    """
    id_np = _as_numpy(id_scores, "id_scores")
    ood_np = _as_numpy(ood_scores, "ood_scores")
    scores = np.concatenate([id_np, ood_np])
    is_ood = np.concatenate([np.zeros(len(id_np)), np.ones(len(ood_np))])
    return {
        "auroc": float(roc_auc_score(is_ood, scores)),
        "aupr_in": float(average_precision_score(1 - is_ood, -scores)),
        "aupr_out": float(average_precision_score(is_ood, scores)),
        "fpr95": fpr_at_tpr(id_np, ood_np),
    }
