"""The study's objective: one OOD metric of one score, averaged over the OOD sets, on the
**validation** split (never test). Written ``"<score>:<metric>"``, e.g. ``"ue_tiered:auroc"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netinv.metrics import METRIC_NAMES, MINIMISED_METRICS
from netinv.records import mean_metric
from netinv.scores import FITTED_SCORES, SCORES

DEFAULT_OBJECTIVE = "ue_tiered:auroc"
SPLIT = "val"  # the only split an objective is computed on


@dataclass(frozen=True)
class Objective:
    """What trials are ranked by: ``metric`` of ``score``, mean over OOD sets, val split."""

    score: str
    metric: str

    @property
    def name(self) -> str:
        return f"{self.score}:{self.metric}"

    @property
    def minimize(self) -> bool:
        return self.metric in MINIMISED_METRICS

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``, as Ray Tune and Optuna take it."""
        return "min" if self.minimize else "max"

    @classmethod
    def parse(cls, text: str) -> Objective:
        """``"<score>:<metric>"`` -> Objective.

        Raises:
            ValueError: Not of that form, or an unknown score or metric; lists the valid ones.
        """
        score, _, metric = text.strip().partition(":")
        if score not in (*SCORES, *FITTED_SCORES) or metric not in METRIC_NAMES:
            raise ValueError(f"the objective must be <score>:<metric> with score in "
                             f"{', '.join((*SCORES, *FITTED_SCORES))} and metric in "
                             f"{', '.join(METRIC_NAMES)}, got objective={text!r}.")
        return cls(score, metric)

    def value(self, record: dict[str, Any]) -> float:
        """The objective of one round record (``netinv.pipeline``), on the val split."""
        return mean_metric(record, score=self.score, metric=self.metric, split=SPLIT)

    def better(self, value: float, best: float | None) -> bool:
        """Strictly better than ``best`` (None = nothing yet); ties keep the earlier round."""
        return best is None or (value < best if self.minimize else value > best)
