"""netinv.summary: the OpenOOD-style table, grouping, x100, and missing values never invented."""

from __future__ import annotations

from netinv.summary import summary_markdown, summary_rows

FULL = {"auroc": 0.9, "aupr_in": 0.8, "aupr_out": 0.7, "fpr95": 0.2, "fpr95_ood_positive": 0.4}


def test_rows_put_near_then_far_then_unplaced_and_the_group_means() -> None:
    per_set = {"tinyimagenet": {**FULL, "auroc": 0.5}, "mnist": FULL, "cifar10": FULL,
               "folder:/x": FULL}
    rows = summary_rows("fashionmnist", per_set)
    assert [r["ood_set"] for r in rows] == ["mnist", "cifar10", "tinyimagenet", "folder:/x",
                                            "near-OOD mean", "far-OOD mean"]
    assert rows[-2]["auroc"] == 0.9 and rows[-1]["auroc"] == 0.7  # (0.9 + 0.5) / 2


def test_markdown_is_x100_and_shows_a_missing_metric_as_a_dash() -> None:
    old = {k: v for k, v in FULL.items() if k != "fpr95_ood_positive"}  # a record before it
    text = summary_markdown("mnist", {"fashionmnist": old, "cifar10": FULL})
    lines = text.splitlines()
    assert lines[0] == ("| OOD set | group | AUROC | AUPR-In | AUPR-Out | FPR95 (ID+) | "
                        "FPR95 (OOD+) |")
    assert "| fashionmnist | near | 90.00 | 80.00 | 70.00 | 20.00 | – |" in lines
    assert "| cifar10 | far | 90.00 | 80.00 | 70.00 | 20.00 | 40.00 |" in lines
    assert "| **near-OOD mean** | near | **90.00** | **80.00** | **70.00** | **20.00** | – |" in lines
