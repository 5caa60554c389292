"""The report's figures: matplotlib (Agg canvas) functions of tables and score arrays.

Each function draws one PNG and returns nothing; the data comes in already chosen
(:mod:`study.analyze` decides which trials, rounds and scores), so nothing here reads files
except :func:`compose_images`, which stacks existing PNGs. Figures are drawn with the object
API (``Figure`` + ``FigureCanvasAgg``): nothing here touches pyplot's global state or switches
the process's matplotlib backend, so importing this module in a notebook changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from sklearn.metrics import roc_curve

from netinv.metrics import TPR_LEVEL, ood_metrics

DPI = 110
STATUS_COLOURS = {"completed": "tab:blue", "stopped": "tab:orange", "running": "tab:green",
                  "failed": "tab:red"}


def _figure(**kwargs) -> Figure:
    """A figure on its own Agg canvas (headless: clusters and CI have no display)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def optimisation_history(trials: pd.DataFrame, path: str | os.PathLike, *, label: str,
                         minimize: bool) -> None:
    """Objective per trial in launch order, coloured by status, with the best-so-far line.

    Args:
        trials: Columns ``order`` (x position), ``objective`` (NaN = none yet), ``status``.
        label: The objective's name, for the y axis.
        minimize: Whether lower objectives are better (sets the best-so-far direction).
    """
    fig = _figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    done = trials.dropna(subset=["objective"]).sort_values("order")
    for status, group in done.groupby("status"):
        ax.scatter(group["order"], group["objective"], s=22, label=str(status),
                   color=STATUS_COLOURS.get(str(status), "tab:gray"))
    if len(done):
        values = done["objective"].to_numpy()
        best = np.minimum.accumulate(values) if minimize else np.maximum.accumulate(values)
        ax.step(done["order"], best, where="post", color="black", lw=1, label="best so far")
    ax.set_xlabel("trial (launch order)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(f"{label} (val)")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    if len(done):
        ax.legend(fontsize=8)
    _save(fig, path)


def importance_bars(importances: Mapping[str, float], path: str | os.PathLike) -> None:
    """Horizontal bars of parameter importances (largest on top)."""
    names = list(importances)[::-1]
    fig = _figure(figsize=(6.4, 0.45 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, share of objective variance)")
    ax.set_title("parameter importance")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def metric_per_round(rounds: pd.DataFrame, path: str | os.PathLike, *, label: str) -> None:
    """Val objective and ID val accuracy against round, one line per trial.

    Args:
        rounds: Columns ``trial`` (legend label), ``round``, ``val_objective``,
            ``id_val_accuracy``; one row per (trial, round).
    """
    fig = _figure(figsize=(10, 3.8))
    ax_obj, ax_acc = fig.subplots(1, 2)
    for trial, group in rounds.groupby("trial", sort=False):
        group = group.sort_values("round")
        ax_obj.plot(group["round"], group["val_objective"], marker="o", ms=3, label=str(trial))
        ax_acc.plot(group["round"], group["id_val_accuracy"], marker="o", ms=3)
    ax_obj.set_ylabel(f"{label} (val)")
    ax_acc.set_ylabel("ID val accuracy")
    for ax in (ax_obj, ax_acc):
        ax.set_xlabel("round")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ax_obj.legend(fontsize=7)
    fig.suptitle("top trials, round by round")
    _save(fig, path)


def roc_curves(id_scores: np.ndarray, ood_scores: Mapping[str, np.ndarray],
               path: str | os.PathLike, *, title: str) -> None:
    """ROC of ID test vs each OOD test set; OOD is the detected (positive) side.

    x = share of ID images flagged as OOD, y = share of OOD images flagged. The dotted line at
    x = 1 - TPR_LEVEL marks where 95% of ID is accepted: there y = 1 - FPR95.
    """
    fig = _figure(figsize=(5, 4.6))
    ax = fig.subplots()
    for name, scores in ood_scores.items():
        labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(scores))])
        fpr, tpr, _ = roc_curve(labels, np.concatenate([id_scores, scores]))
        m = ood_metrics(id_scores, scores)
        ax.plot(fpr, tpr, lw=1.4,
                label=f"{name}: AUROC {m['auroc']:.3f}, FPR95 {m['fpr95']:.3f}")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--")
    ax.axvline(1 - TPR_LEVEL, color="black", lw=0.8, ls=":")
    ax.set_xlabel("ID test images flagged as OOD")
    ax.set_ylabel("OOD test images flagged as OOD")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


def score_histograms(id_scores: np.ndarray, ood_scores: Mapping[str, np.ndarray],
                     path: str | os.PathLike, *, score: str, title: str) -> None:
    """One panel per OOD set: density histograms of ID test vs that OOD test set's scores."""
    n = max(1, len(ood_scores))
    fig = _figure(figsize=(3.6 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False)
    everything = np.concatenate([id_scores, *ood_scores.values()])
    lo, hi = float(everything.min()), float(everything.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    for ax, (name, scores) in zip(axes[0], ood_scores.items()):
        ax.hist(id_scores, bins=bins, density=True, alpha=0.55, label="ID test")
        ax.hist(scores, bins=bins, density=True, alpha=0.55, label=f"{name} test")
        ax.set_xlabel(f"{score} (higher = more OOD)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def compose_images(images: Sequence[tuple[str, str | os.PathLike]], path: str | os.PathLike
                   ) -> None:
    """Put existing PNGs side by side at their own resolution, each under its caption.

    Args:
        images: (caption, PNG path) pairs, left to right.
    """
    arrays = [imread(os.fspath(image_path)) for _, image_path in images]
    width_px = sum(a.shape[1] for a in arrays)
    height_px = max(a.shape[0] for a in arrays) + 30  # room for the captions
    fig = _figure(figsize=(width_px / DPI, height_px / DPI))
    axes = fig.subplots(1, len(arrays), squeeze=False,
                        gridspec_kw={"width_ratios": [a.shape[1] for a in arrays]})
    for ax, (caption, _), array in zip(axes[0], images, arrays):
        ax.imshow(array, interpolation="none")
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 30 / height_px, wspace=0.02)
    fig.savefig(path, dpi=DPI)
