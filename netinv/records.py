"""The per-round record: its field names, and helpers that read or serialise records.

:func:`netinv.pipeline.run_rounds` yields one record per round: a plain dict with every key of
:data:`RECORD_FIELDS` plus ``"ood"``, a list of rows (one per OOD set, split and score) with the
keys of :data:`OOD_ROW_FIELDS`. ``study.results`` derives its Parquet rounds schema from
:data:`RECORD_FIELDS`, so a field added here becomes a column there.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from netinv.metrics import METRIC_NAMES


class RecordField(NamedTuple):
    """One record key: its Python type (values may also be None) and what it holds."""

    type: type
    description: str


RECORD_FIELDS: dict[str, RecordField] = {
    "round": RecordField(int, "round index; 0 = the noise-only baseline"),
    "garbage_size": RecordField(int, "images in the garbage pool after this round's exclusion"),
    "garbage_added": RecordField(int, "inverted images added to the pool this round"),
    "classifier_loss": RecordField(float, "mean weighted cross-entropy, last epoch"),
    "inversion_loss": RecordField(float, "weighted inversion loss, last quarter of the steps; "
                                         "None in round 0"),
    "inversion_kl": RecordField(float, "KL(P || Q) term, unweighted; None in round 0"),
    "inversion_ce": RecordField(float, "CE(Q, argmax P) term, unweighted; None in round 0"),
    "inversion_cosine": RecordField(float, "mean pairwise feature cosine, in [-1, 1]; None in "
                                           "round 0"),
    "inversion_ortho": RecordField(float, "feature Gram deviation from I, in [0, 1]; None in "
                                          "round 0"),
    "inversion_feature_stats": RecordField(float, "BatchNorm input-statistics prior, "
                                                  "unweighted; None when its weight is 0"),
    "inversion_tv": RecordField(float, "total-variation prior, unweighted; None when off"),
    "inversion_l2": RecordField(float, "pixel l2 prior, unweighted; None when off"),
    "inversion_diversity": RecordField(float, "mode-seeking term d_z / d_x, unweighted; None "
                                              "when off"),
    "inverted_diversity_features": RecordField(float, "mean pairwise distance of the inverted "
                                                      "samples within a label, penultimate "
                                                      "features of the inverted classifier; "
                                                      "None in round 0 and with policy none"),
    "inverted_diversity_pixels": RecordField(float, "the same in pixel space ([0, 1] pixels, "
                                                    "Euclidean); None as above"),
    "inverted_frechet": RecordField(float, "Fréchet distance between the inverted samples' and "
                                           "the ID val images' features under the inverted "
                                           "classifier; None as above"),
    "id_val_accuracy": RecordField(float, "ID val accuracy over K = n + 1 classes, in [0, 1]"),
    "id_test_accuracy": RecordField(float, "ID test accuracy over K = n + 1 classes, in [0, 1]"),
    "id_val_garbage_share": RecordField(float, "share of ID val predicted garbage, in [0, 1]"),
    "id_test_garbage_share": RecordField(float, "share of ID test predicted garbage, in [0, 1]"),
    "time_invert_s": RecordField(float, "generator training, seconds"),
    "time_exclude_s": RecordField(float, "sampling and filtering the inversions, seconds"),
    "time_train_s": RecordField(float, "classifier training, seconds"),
    "time_eval_s": RecordField(float, "scoring every evaluation set, seconds"),
    "time_round_s": RecordField(float, "the whole round, seconds"),
    "round0_cached": RecordField(bool, "round 0 loaded from the round-0 cache (its times are "
                                       "those of the run that computed it) rather than "
                                       "computed; None in later rounds"),
}

OOD_ROWS = "ood"  # the record key of the OOD rows
OOD_ROW_FIELDS = ("ood_set", "split", "score", *METRIC_NAMES, "garbage_share")


def json_safe(value: Any) -> Any:
    """A record with NaN/inf replaced by None, so JSON files of records stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def record_scores(record: dict[str, Any]) -> list[str]:
    """The score names that have OOD rows in ``record``, in the order they first appear
    (``netinv.scores.SCORES``, then the fitted scores when ``rounds/fitted_scores`` was on)."""
    return list(dict.fromkeys(row["score"] for row in record[OOD_ROWS]))


def mean_metric(record: dict[str, Any], *, score: str, metric: str, split: str) -> float:
    """Mean of ``metric`` for ``score`` over the record's OOD sets on ``split`` (val or test).

    Raises:
        ValueError: The record has no OOD row for ``score`` on ``split``.
    """
    values = [row[metric] for row in record[OOD_ROWS]
              if row["score"] == score and row["split"] == split]
    if not values:
        raise ValueError(f"no OOD rows for score={score!r}, split={split!r} in the record.")
    return sum(values) / len(values)


FLAT_PREFIX = "ood"  # flat OOD metric names: ood/<split>/<score>/<ood_set>/<metric>


def flat_name(*parts: str) -> str:
    """A stable metric name from ``parts`` joined by "/", each part limited to the characters
    trackers accept (letters, digits, ``_-. ``); anything else, e.g. the ``:`` of a
    ``folder:/path`` set, becomes ``_``."""
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", p) for p in parts)


def flat_ood_metrics(record: dict[str, Any]) -> dict[str, float]:
    """Every OOD row of a record as flat scalar metrics, for trackers (MLflow, TensorBoard).

    Names: ``ood/<split>/<score>/<ood_set>/<metric>`` for every metric and ``garbage_share``,
    plus ``ood/<split>/<score>/mean/<metric>`` (mean over the OOD sets), e.g.
    ``ood/val/ue_tiered/fashionmnist/auroc``. A metric a row lacks is left out.
    """
    out: dict[str, float] = {}
    sums: dict[str, list[float]] = {}
    for row in record[OOD_ROWS]:
        for metric in (*METRIC_NAMES, "garbage_share"):
            value = row.get(metric)
            if value is None:
                continue
            out[flat_name(FLAT_PREFIX, row["split"], row["score"], row["ood_set"], metric)] = value
            if metric != "garbage_share":
                key = flat_name(FLAT_PREFIX, row["split"], row["score"], "mean", metric)
                sums.setdefault(key, []).append(value)
    out.update({key: sum(values) / len(values) for key, values in sums.items()})
    return out
