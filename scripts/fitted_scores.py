"""The scores fitted on ID training images (``Detector.fit``: ``knn``, ``layer_stats``,
``fused``) on the shipped detectors, beside their logit scores.

    .venv/bin/python scripts/fitted_scores.py --data-root ../shared/data   # fitted_scores.json
    .venv/bin/python scripts/fitted_scores.py --data-root ../shared/data --plain cifar10
    .venv/bin/python scripts/fitted_scores.py --data-root ../shared/data \
        --plain cifar10=runs/results/cifar10/nclass-s0.pt      # the one `results.py run` saved
    .venv/bin/python scripts/fitted_scores.py --data-root ../shared/data \
        --detector cifar10:width-32=runs/w32/detector.pt          # any other detector file
    .venv/bin/python scripts/results.py page                        # puts it on the page

``--plain ID`` adds the same table for the preset's plain n-class baseline (seed 0, trained here
with ``netinv.pipeline.run_plain``: no garbage class; minutes for CIFAR-10 on 2 cores), so the
scores on the method's classifier can be compared with the same scores on a plain network's, as
OpenOOD reports KNN. ``--plain ID=PATH`` scores that baseline's saved network instead of
training it (``scripts/results.py run ID`` keeps its ``nclass-s0`` at
``runs/results/<ID>/nclass-s0.pt``: the same config, seed and training).
``--detector ID:LABEL=PATH`` adds a table for another detector file of ID set ID (e.g. a run's
``detector.pt``).

For each shipped detector (``netinv/presets/<id>.pt``, seed 0) whose ID training split is
present: ``Detector.fit`` on a seeded draw of ``BANK_SIZE`` + ``netinv.detector.HELD_OUT_SIZE``
ID *training* images, then the full ID test split against the full test split of each of the ID
set's OOD sets (``scripts/experiments.OOD_SETS``; TinyImageNet's is its val folder), scored by
MSP, energy, the detector's own score, KNN at each k of ``KS``, ``layer_stats`` and ``fused``.
Nothing is chosen on these test numbers: the page reports every k, and the detector's defaults
(k = ``netinv.knn.DEFAULT_K``, the fused parts) are fixed in ``netinv``. Metrics are netinv's
(``netinv.metrics``; FPR95 with ID positive).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from experiments import OOD_SETS, PLAIN_SCORE

from netinv.config import Config
from netinv.data import DataUnavailableError, load_split
from netinv.detector import FUSED, Detector, held_out_size
from netinv.knn import KNN, knn_distance
from netinv.layer_stats import LAYER_STATS
from netinv.metrics import ood_metrics
from netinv.pipeline import prepare_data, run_plain
from netinv.presets import get_preset, preset_detector_path
from netinv.scores import SCORES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "fitted_scores.json"
ID_SETS = ("mnist", "fashionmnist", "cifar10")
BANK_SIZE = 10_000
KS = (1, 5, 10, 50)
LOGIT_SCORES = ("msp", "energy")
SEED = 0


def plain_detector(id_set: str, root: str) -> Detector:
    """The preset's plain n-class baseline, seed ``SEED``, trained now (``run_plain``)."""
    config = Config.from_flat({**get_preset(id_set), "rounds/seed": SEED, "rounds/device": "cpu",
                               "data/root": root, "data/download": False})
    data = prepare_data(config)
    return Detector.from_run(run_plain(config, data=data).classifier, config, data,
                             score=PLAIN_SCORE)


def evaluate(id_set: str, root: str, *, plain: bool = False, path: str | None = None
             ) -> dict | None:
    """AUROC and FPR95 per OOD set and score for one shipped detector (``plain``: for its
    preset's plain n-class baseline instead, trained now unless ``path`` is its saved network;
    ``path``: for that detector file instead); None without its data."""
    try:
        train = load_split(id_set, "train", root=root, download=False)
        test = load_split(id_set, "test", root=root, download=False)
    except DataUnavailableError as err:
        print(f"{id_set}: skipped ({err})")
        return None
    started = time.perf_counter()
    detector = (plain_detector(id_set, root) if plain and path is None
                else Detector.load(path or preset_detector_path(id_set)))
    first = (detector.layer_stats.first if detector.layer_stats is not None  # as the file has it
             else detector.config.get("rounds/layer_stats_first", 0))
    detector.fit(torch.as_tensor(train.images), bank_size=BANK_SIZE, seed=SEED,
                 layer_stats_first=first)
    bank_s = time.perf_counter() - started

    def scores(images) -> dict[str, torch.Tensor]:
        out = detector.outputs(torch.as_tensor(images), features=True, layer_means=True)
        own = [n for n in dict.fromkeys((*LOGIT_SCORES, detector.score_name)) if n in SCORES]
        result = {name: SCORES[name](out.logits) for name in own}  # ordered, no repeats
        result.update({f"{KNN}-{k}": knn_distance(detector.knn_bank, out.features, k)
                       for k in KS})
        return {**result, **detector.scores_from(out, (LAYER_STATS, FUSED))}

    id_scores = scores(test.images)
    result: dict = {"score": detector.score_name, "bank_size": len(detector.knn_bank),
                    "held_out": held_out_size(len(train.images)),
                    "fused": list(detector.fusion.scores), "layers": len(detector.layer_stats.scales),
                    "layer_first": detector.layer_stats.first,
                    "accuracy": accuracy(detector, test),
                    "test_images": len(test.images), "bank_s": round(bank_s, 1), "ood": {}}
    for ood_set in OOD_SETS[id_set]:
        try:
            ood = load_split(ood_set, "test", root=root, download=False)
        except DataUnavailableError as err:
            print(f"{id_set} vs {ood_set}: skipped ({err})")
            continue
        ood_scores = scores(ood.images)
        metrics = {name: ood_metrics(id_scores[name], ood_scores[name]) for name in id_scores}
        result["ood"][ood_set] = {
            "images": len(ood.images),
            **{name: {"auroc": m["auroc"], "fpr95": m["fpr95"]} for name, m in metrics.items()}}
        aurocs = {name: round(v["auroc"], 4) for name, v in result["ood"][ood_set].items()
                  if isinstance(v, dict)}
        print(f"{id_set} vs {ood_set}: {aurocs}")
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def accuracy(detector: Detector, test) -> float:
    """Share of the ID test images whose argmax over all K classes is their class."""
    predicted = detector.logits(torch.as_tensor(test.images)).argmax(dim=1)
    return (predicted == torch.as_tensor(test.labels)).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("NETINV_DATA"))
    parser.add_argument("--plain", nargs="*", default=[], metavar="ID[=PATH]",
                        help=f"also the plain n-class baseline of these ID sets' presets "
                             f"(of {', '.join(ID_SETS)}): trained now, or its saved network "
                             f"PATH (runs/results/ID/nclass-s0.pt from scripts/results.py run)")
    parser.add_argument("--detector", action="append", default=[], metavar="ID:LABEL=PATH",
                        help="also this detector file of ID set ID, shown as LABEL (repeatable)")
    args = parser.parse_args(argv)
    extra = []
    for spec in args.detector:
        head, _, path = spec.partition("=")
        id_set, _, label = head.partition(":")
        if id_set not in ID_SETS or not label or not Path(path).is_file():
            parser.error(f"--detector must be ID:LABEL=PATH with ID one of {', '.join(ID_SETS)} "
                         f"and PATH an existing file, got {spec!r}")
        extra.append((id_set, label, path))
    plains = []
    for spec in args.plain:
        id_set, _, path = spec.partition("=")
        if id_set not in ID_SETS or (path and not Path(path).is_file()):
            parser.error(f"--plain must be ID or ID=PATH with ID one of {', '.join(ID_SETS)} "
                         f"and PATH an existing file, got {spec!r}")
        plains.append((id_set, path or None))
    if not args.data_root:
        parser.error("--data-root (or NETINV_DATA) is required: the ID sets' train and test "
                     "splits are read from it")
    result = {id_set: r for id_set in ID_SETS if (r := evaluate(id_set, args.data_root))}
    earlier = json.loads(OUT.read_text()) if OUT.exists() else {}
    for id_set in result:  # a plain baseline or other detector of an earlier run is kept
        for key in ("plain", "others"):
            if key in earlier.get(id_set, {}):
                result[id_set][key] = earlier[id_set][key]
    for id_set, path in plains:
        if (r := evaluate(id_set, args.data_root, plain=True, path=path)) and id_set in result:
            result[id_set]["plain"] = {**r, **({"file": path} if path else {})}
    for id_set, label, path in extra:
        if (r := evaluate(id_set, args.data_root, path=path)) and id_set in result:
            result[id_set].setdefault("others", {})[label] = {**r, "file": path}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
