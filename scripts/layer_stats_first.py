"""Which convolutions the layer-statistics score should use, chosen on validation splits:
``rounds/layer_stats_first`` for a shipped detector.

    .venv/bin/python scripts/layer_stats_first.py cifar10 --data-root ../shared/data
    .venv/bin/python scripts/results.py page                        # puts it on the page

For the shipped detector of an ID set (``netinv/presets/<id>.pt``, seed 0: its classifier is
kept, nothing is trained), the script refits the fitted scores as a run of its preset does
(``netinv.pipeline.fit_scores``: a seed-0 draw of 10,000 + 2,000 ID training images, fused =
energy + knn + layer_stats) once for every first convolution f = 0 .. L - 1, and scores the
run's splits (``prepare_data`` of the preset, seed 0: the ID validation images held out of ID
train, the ID test split, each OOD set's val and test halves) with ``layer_stats`` and ``fused``.
The choice is the f with the highest mean *validation* fused AUROC over the OOD sets (ties: the
smaller f); the test splits are only reported, and so are the sets of ``unseen_ood.py`` (built
offline; nothing was chosen on them) against the ID test split. Writes
``docs/results/layer_stats_first.json`` (entries of other ID sets are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from unseen_ood import NOT_OOD_FOR, unseen_sets

from netinv.config import Config
from netinv.detector import FUSED, Detector
from netinv.layer_stats import LAYER_STATS
from netinv.metrics import ood_metrics
from netinv.pipeline import fit_scores, prepare_data
from netinv.presets import PRESETS, get_preset, preset_detector_path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "layer_stats_first.json"
SEED = 0  # the shipped detectors' seed
SCORED = (LAYER_STATS, FUSED)


def evaluate(id_set: str, root: str) -> dict:
    """Per first convolution f: AUROC and FPR95 of ``layer_stats`` and ``fused`` per split and
    OOD set, and the validation-chosen f."""
    started = time.perf_counter()
    flat = {**get_preset(id_set), "rounds/seed": SEED, "rounds/device": "cpu",
            "data/root": root, "data/download": False}
    config = Config.from_flat(flat)
    data = prepare_data(config)
    detector = Detector.load(preset_detector_path(id_set))
    shipped_first = detector.layer_stats.first if detector.layer_stats is not None else 0
    detector.batch_size = None  # by device and body: faster than the file's fixed chunk
    unseen = {name: torch.as_tensor(images) for name, images
              in unseen_sets(data.id_test.images.numpy()).items()
              if id_set not in NOT_OOD_FOR.get(name, ())}
    sets = {("id", "val"): data.id_val.images, ("id", "test"): data.id_test.images,
            **{(o, split): images for o, splits in data.ood.items()
               for split, images in splits.items()},
            **{(name, "unseen"): images for name, images in unseen.items()}}
    outputs = {key: detector.outputs(images, features=True, layer_means=True)
               for key, images in sets.items()}
    firsts: dict[str, dict] = {}
    convolutions = sum(isinstance(m, nn.Conv2d) for m in detector.classifier.modules())
    for first in range(convolutions):
        fitted = Config.from_flat({**flat, "rounds/layer_stats_first": first})
        fit_scores(detector, data.id_train.images, fitted)
        scores = {key: detector.scores_from(out, SCORED) for key, out in outputs.items()}
        row: dict[str, dict] = {}
        for split in ("val", "test"):
            row[split] = {o: {name: _metrics(scores[("id", split)][name],
                                             scores[(o, split)][name]) for name in SCORED}
                          for o in data.ood}
        row["unseen"] = {name: {FUSED: _metrics(scores[("id", "test")][FUSED],
                                                scores[(name, "unseen")][FUSED])}
                         for name in unseen}
        firsts[str(first)] = row
        print(f"{id_set} first={first}: val fused "
              f"{[round(row['val'][o][FUSED]['auroc'], 4) for o in data.ood]}, test fused "
              f"{[round(row['test'][o][FUSED]['auroc'], 4) for o in data.ood]}")
    return {"ood": list(data.ood), "unseen": list(unseen), "fit_images": len(data.id_train.images),
            "shipped_first": shipped_first, "chosen": choose(firsts), "firsts": firsts,
            "total_s": round(time.perf_counter() - started, 1)}


def choose(firsts: dict[str, dict]) -> int:
    """The f of ``firsts`` ({str(f): {"val": {ood_set: {"fused": {"auroc": ...}}}, ...}})
    with the highest mean validation fused AUROC over the OOD sets; a tie goes to the smaller
    f. The other splits are not looked at."""
    def val_mean(first: str) -> float:
        per_ood = firsts[first]["val"]
        return sum(v[FUSED]["auroc"] for v in per_ood.values()) / len(per_ood)
    return int(max(firsts, key=lambda f: (val_mean(f), -int(f))))


def _metrics(id_scores: torch.Tensor, ood_scores: torch.Tensor) -> dict[str, float]:
    """AUROC and FPR95 (ID positive) of one score on one ID/OOD pair."""
    metrics = ood_metrics(id_scores, ood_scores)
    return {"auroc": metrics["auroc"], "fpr95": metrics["fpr95"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id_set", choices=sorted(PRESETS))
    parser.add_argument("--data-root", default=os.environ.get("NETINV_DATA"))
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("--data-root (or NETINV_DATA) is required")
    if not get_preset(args.id_set).get("rounds/fitted_scores"):
        parser.error(f"preset {args.id_set!r} has no fitted scores (rounds/fitted_scores), "
                     f"so no layer statistics to choose for")
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    result[args.id_set] = evaluate(args.id_set, args.data_root)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"chose first={result[args.id_set]['chosen']}; wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
