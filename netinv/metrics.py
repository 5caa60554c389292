"""OOD detection metrics, each named for its convention.

Scores follow :mod:`netinv.scores`: higher = more likely OOD. Two FPR@95TPR conventions are in
use in the literature and give different numbers on the same scores; both are stored, each under
a name that says which side is positive:

- ``fpr95`` (**ID positive**, the ODIN and Energy papers; design.md): the fraction of OOD images
  accepted as ID at the threshold that accepts 95% of ID images (ID accepted when
  score <= threshold). The key keeps its short name because every stored record, Parquet file and
  objective string (``"energy:fpr95"``) uses it; displays label it "FPR95 (ID+)".
- ``fpr95_ood_positive`` (**OOD positive**, OpenOOD v1.5's ``auc_and_fpr_recall`` and
  pytorch-ood's ``OODMetrics["FPR95TPR"]``): the fraction of ID images flagged as OOD at the
  threshold that flags 95% of OOD images (OOD flagged when score >= threshold); "FPR95 (OOD+)".
  Both equal ``fpr[argmax(tpr >= 0.95)]`` of :func:`sklearn.metrics.roc_curve`, with ID resp.
  OOD as the positive label and minus resp. plus the score, every threshold kept
  (``drop_intermediate=False``; pytorch-ood's ``binary_roc`` keeps them too). sklearn's default
  drops collinear points and can then land on a later point; that happens only when tied scores
  make two equal diagonal ROC steps in a row, so it agrees on untied scores. Records written before this metric
  existed lack the key; readers show it as missing, never as a number.
- ``auroc``: area under the ROC curve separating OOD from ID; symmetric in which side is positive.
- ``aupr_in``: average precision with **ID as the positive class** (ranked by minus the score).
- ``aupr_out``: average precision with **OOD as the positive class** (ranked by the score).

AUPR difference from the two libraries, stated: both OpenOOD v1.5 and pytorch-ood take the same
positive class and score sign as here (AUPR-In: ID positive, minus the score; AUPR-Out: OOD
positive, the score) but integrate the precision-recall curve with the trapezoid rule
(``auc(recall, precision)``), while ``aupr_in``/``aupr_out`` here are scikit-learn's
``average_precision_score`` (a step sum, no interpolation). The trapezoid value is slightly
higher on curves with few ties; AUROC and both FPR95s are the same computations.

AUROC and AP are computed here in NumPy (:func:`auroc`, :func:`average_precision`), equal to
scikit-learn's ``roc_auc_score`` and ``average_precision_score`` up to float rounding, ties
included (the tests compare them): importing ``sklearn.metrics`` took 0.6-0.8 s in every
study worker and driver, and its argument checks cost more than the sums on a study's small
sets. Both take non-empty inputs with both classes present; :func:`ood_metrics` checks them.

OOD sets are grouped per ID set into near- and far-OOD as OpenOOD v1.5 reports them
(:data:`OOD_GROUPS`, :func:`ood_group`); :func:`group_means` gives the summary row.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch

FPR95 = "fpr95"  # ID positive (ODIN / Energy)
FPR95_OOD_POSITIVE = "fpr95_ood_positive"  # OOD positive (OpenOOD v1.5, pytorch-ood)
METRIC_NAMES = ("auroc", "aupr_in", "aupr_out", FPR95, FPR95_OOD_POSITIVE)
MINIMISED_METRICS = (FPR95, FPR95_OOD_POSITIVE)  # every other metric is better when higher
METRIC_LABELS = {  # short column titles that say the convention
    "auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out",
    FPR95: "FPR95 (ID+)", FPR95_OOD_POSITIVE: "FPR95 (OOD+)",
}
TPR_LEVEL = 0.95  # share of the positive side detected at the FPR threshold

# Near- and far-OOD per ID set: OpenOOD v1.5's grouping where it has the benchmark, else one
# rule: near = images of the ID set's own kind, far = the other sets named. Textures is "dtd"
# here; NotMNIST is no dataset here but stays listed.
# - mnist (OpenOOD): near NotMNIST, FashionMNIST; far Textures, CIFAR-10, TinyImageNet,
#   Places365. Added by the rule: KMNIST near (glyphs), CIFAR-100 and SVHN far (photos).
# - cifar10 (OpenOOD): near CIFAR-100, TinyImageNet; far MNIST, SVHN, Textures, Places365.
#   Added: FashionMNIST and KMNIST far.
# - cifar100 (OpenOOD): as cifar10, with CIFAR-10 near.
# - fashionmnist (not in OpenOOD): near the glyph sets MNIST, KMNIST, NotMNIST.
# - svhn (not in OpenOOD; photographed digits at CIFAR's scale): near the object photos at
#   that scale, CIFAR-10, CIFAR-100, TinyImageNet.
# - tinyimagenet (OpenOOD's ImageNet-200 near sets, SSB-hard and NINCO, are not here): near
#   CIFAR-10 and CIFAR-100, its own kind of object photo.
# A set not listed for an ID set (e.g. a user's folder) belongs to neither group: it appears
# per set and in no group mean.
_GREY = ("mnist", "fashionmnist", "kmnist")
_FAR_FOR_PHOTOS = ("svhn", "dtd", "places365")
OOD_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "mnist": {"near": ("fashionmnist", "kmnist", "notmnist"),
              "far": ("cifar10", "cifar100", "svhn", "tinyimagenet", "dtd", "places365")},
    "fashionmnist": {"near": ("mnist", "kmnist", "notmnist"),
                     "far": ("cifar10", "cifar100", "svhn", "tinyimagenet", "dtd",
                             "places365")},
    "cifar10": {"near": ("cifar100", "tinyimagenet"), "far": (*_GREY, *_FAR_FOR_PHOTOS)},
    "cifar100": {"near": ("cifar10", "tinyimagenet"), "far": (*_GREY, *_FAR_FOR_PHOTOS)},
    "tinyimagenet": {"near": ("cifar10", "cifar100"), "far": (*_GREY, *_FAR_FOR_PHOTOS)},
    "svhn": {"near": ("cifar10", "cifar100", "tinyimagenet"),
             "far": (*_GREY, "dtd", "places365")},
}
GROUPS = ("near", "far")


def _as_numpy(scores: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = scores.detach().cpu().double().numpy() if torch.is_tensor(scores) else np.asarray(
        scores, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape={array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` must be finite, got {int((~np.isfinite(array)).sum())} "
                         f"non-finite values.")
    return array


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``positives`` (scored higher) against ``negatives``.

    The Mann-Whitney statistic with tied scores counted as half a win, i.e. the trapezoidal
    area of the full ROC curve (scikit-learn's ``roc_auc_score``).

    Returns:
        A float in [0, 1]; 0.5 is chance.
    """
    scores = np.concatenate([negatives, positives])
    _, tie_group, tie_counts = np.unique(scores, return_inverse=True, return_counts=True)
    # 1-based midrank of each distinct value: the ranks a tie group spans, averaged
    group_end = np.cumsum(tie_counts)
    midrank = group_end - (tie_counts - 1) / 2.0
    positive_ranks = midrank[tie_group[len(negatives):]].sum()
    n_neg, n_pos = len(negatives), len(positives)
    return float((positive_ranks - n_pos * (n_pos + 1) / 2.0) / (n_neg * n_pos))


def average_precision(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Average precision of ranking by ``scores`` (higher first) for the ``is_positive`` rows.

    The step sum over thresholds at each distinct score, sum_k (R_k - R_k-1) P_k, without
    interpolation (scikit-learn's ``average_precision_score``).

    Returns:
        A float in (0, 1]; the positives' share is chance.
    """
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], is_positive[order].astype(np.float64)
    # the last row of each run of equal scores: one threshold per distinct score
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    true_positives = np.cumsum(hits)[last]
    precision = true_positives / (last + 1)
    recall_step = np.diff(np.r_[0.0, true_positives]) / true_positives[-1]
    return float(np.sum(recall_step * precision))


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = TPR_LEVEL) -> float:
    """ID positive: fraction of OOD images accepted as ID when ``tpr`` of ID images are accepted.

    ID is accepted when its score is <= the threshold, the smallest ID score quantile that
    accepts at least ``tpr`` of ID images; ties at the threshold are accepted on both sides.

    Returns:
        A float in [0, 1]; lower is better.
    """
    ranked = np.sort(id_scores)
    threshold = ranked[min(len(ranked) - 1, int(np.ceil(tpr * len(ranked))) - 1)]
    return float((ood_scores <= threshold).mean())


def fpr_at_tpr_ood_positive(id_scores: np.ndarray, ood_scores: np.ndarray,
                            tpr: float = TPR_LEVEL) -> float:
    """OOD positive: fraction of ID images flagged as OOD when ``tpr`` of OOD images are flagged.

    OOD is flagged when its score is >= the threshold, the largest OOD score quantile that
    flags at least ``tpr`` of OOD images; ties at the threshold are flagged on both sides
    (OpenOOD v1.5 ``auc_and_fpr_recall``, pytorch-ood ``fpr_at_tpr``). It is
    :func:`fpr_at_tpr` with the roles and the score's sign swapped.

    Returns:
        A float in [0, 1]; lower is better.
    """
    return fpr_at_tpr(-np.asarray(ood_scores), -np.asarray(id_scores), tpr)


def ood_metrics(id_scores: torch.Tensor | np.ndarray, ood_scores: torch.Tensor | np.ndarray
                ) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and both FPR@95TPR of one score on one ID/OOD pair.

    Args:
        id_scores: Scores of ID images, shape (N,), higher = more likely OOD.
        ood_scores: Scores of OOD images, shape (M,).

    Returns:
        One value per :data:`METRIC_NAMES` key, each in [0, 1] (see the module docstring).

    Raises:
        ValueError: Either input is empty, not 1-D, or holds NaN/inf.
    """
    id_np = _as_numpy(id_scores, "id_scores")
    ood_np = _as_numpy(ood_scores, "ood_scores")
    scores = np.concatenate([id_np, ood_np])
    is_ood = np.r_[np.zeros(len(id_np), dtype=bool), np.ones(len(ood_np), dtype=bool)]
    return {
        "auroc": auroc(id_np, ood_np),
        "aupr_in": average_precision(-scores, ~is_ood),
        "aupr_out": average_precision(scores, is_ood),
        FPR95: fpr_at_tpr(id_np, ood_np),
        FPR95_OOD_POSITIVE: fpr_at_tpr_ood_positive(id_np, ood_np),
    }


def ood_group(id_set: str, ood_set: str) -> str | None:
    """``"near"`` or ``"far"`` for ``ood_set`` when the ID set is ``id_set``; None when
    :data:`OOD_GROUPS` does not place it (an unlisted ID or OOD set)."""
    for group, names in OOD_GROUPS.get(id_set, {}).items():
        if ood_set in names:
            return group
    return None


def group_means(id_set: str, values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Near- and far-OOD means of one metric, OpenOOD style.

    Args:
        id_set: The ID dataset's name (a key of :data:`OOD_GROUPS`, else no group has sets).
        values: OOD set name -> metric value; None or NaN values (e.g. a metric an old record
            lacks) make their group's mean None rather than a mean of fewer sets.

    Returns:
        ``{"near": mean or None, "far": mean or None}``; None where the group has no set.
    """
    out: dict[str, float | None] = {}
    for group in GROUPS:
        members: Iterable[float | None] = [v for name, v in values.items()
                                           if ood_group(id_set, name) == group]
        members = list(members)
        missing = any(v is None or (isinstance(v, float) and math.isnan(v)) for v in members)
        out[group] = None if not members or missing else float(np.mean(members))
    return out
