"""An OpenOOD-style summary of one round: metrics x100 per OOD set, then near- and far-OOD means.

OpenOOD v1.5 reports each benchmark as per-dataset rows plus the near-OOD and far-OOD means; the
grouping per ID set is :data:`netinv.metrics.OOD_GROUPS`. Values are percentages (x100) with two
decimals. A metric an old record lacks (``fpr95_ood_positive`` before it existed) shows as "–",
and so does any group mean that would need it: no number is invented.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from netinv.metrics import GROUPS, METRIC_LABELS, METRIC_NAMES, group_means, ood_group

MISSING = "–"


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{100 * value:.2f}"


def summary_rows(id_set: str, per_set: Mapping[str, Mapping[str, Any]]
                 ) -> list[dict[str, Any]]:
    """The summary's rows: one per OOD set (near first, then far, then unplaced sets), then
    ``near-OOD mean`` and ``far-OOD mean`` where the group has a set.

    Args:
        id_set: The ID dataset's name (decides the grouping).
        per_set: OOD set name -> {metric: value in [0, 1]}; a missing key counts as missing.

    Returns:
        Dicts with ``"ood_set"``, ``"group"`` ("near", "far" or "") and one value in [0, 1] or
        None per :data:`~netinv.metrics.METRIC_NAMES` key (not yet x100).
    """
    rank = {"near": 0, "far": 1, None: 2}
    names = sorted(per_set, key=lambda n: (rank[ood_group(id_set, n)], n))
    rows = [{"ood_set": n, "group": ood_group(id_set, n) or "",
             **{m: per_set[n].get(m) for m in METRIC_NAMES}} for n in names]
    means = {m: group_means(id_set, {n: per_set[n].get(m) for n in names}) for m in METRIC_NAMES}
    for group in GROUPS:
        if any(r["group"] == group for r in rows):
            rows.append({"ood_set": f"{group}-OOD mean", "group": group,
                         **{m: means[m][group] for m in METRIC_NAMES}})
    return rows


def summary_markdown(id_set: str, per_set: Mapping[str, Mapping[str, Any]],
                     metrics: Iterable[str] = METRIC_NAMES) -> str:
    """:func:`summary_rows` as a Markdown table, values x100, group means in bold."""
    metrics = list(metrics)
    lines = ["| OOD set | group | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |",
             "|---|---|" + "---:|" * len(metrics)]
    for row in summary_rows(id_set, per_set):
        is_mean = row["ood_set"].endswith(" mean")
        cells = [_pct(row[m]) for m in metrics]
        if is_mean:
            cells = [c if c == MISSING else f"**{c}**" for c in cells]
        name = f"**{row['ood_set']}**" if is_mean else row["ood_set"]
        lines.append(f"| {name} | {row['group'] or MISSING} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
