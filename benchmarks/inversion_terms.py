"""Time the inversion phase of the reference round (``benchmarks/round.py``) per setting, side by
side in one process, and print JSON: what each inversion prior, body and policy costs.

    python benchmarks/inversion_terms.py --data-root ../shared/data
    python benchmarks/inversion_terms.py --data-root ../shared/data --repeats 3

The phase is generator training (200 steps at batch 64) plus exclusion (sampling 2,000 images,
the policy and the per-round measures) against the reference classifier, on MNIST. Its cost does
not depend on the classifier's weights, so an untrained one stands in and no data is trained on;
only the ID val images (for the Fréchet distance) and ID train images (for the
``feature_stats_target=id`` statistics) are read. Settings run round-robin, ``--repeats`` times,
so a change in machine load hits every setting alike; the median is reported. Add the
difference to ``benchmarks/round.py``'s ``round_s`` to get a setting's share of a round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from netinv.config import Config
from netinv.inference import Normalizer
from netinv.models import Classifier, Generator
from netinv.pipeline import _invert_and_exclude, prepare_data

SETTINGS = {
    "baseline": {},
    "feature_stats (running)": {"inversion/feature_stats": 10.0},
    "feature_stats (id)": {"inversion/feature_stats": 10.0,
                           "inversion/feature_stats_target": "id"},
    "tv": {"inversion/tv": 1.0},
    "l2": {"inversion/l2": 0.01},
    "diversity": {"inversion/diversity": 0.01},
    "arch upsample": {"inversion/arch": "upsample"},
    "policy mix": {"garbage/policy": "mix"},
    "all (ablation's last variant)": {
        "inversion/feature_stats": 10.0, "inversion/feature_stats_target": "id",
        "inversion/tv": 1.0, "inversion/diversity": 0.01, "inversion/arch": "upsample",
        "garbage/policy": "mix", "garbage/ue_threshold": 0.2},
}
REFERENCE = {"data/id": "mnist", "data/ood": "fashionmnist", "inversion/steps": 200,
             "inversion/samples_per_round": 2000, "rounds/count": 1, "rounds/device": "cpu"}


def time_phase(config: Config, data, images: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Seconds of one round-1 inversion + exclusion under ``config``."""
    normalize = Normalizer(data.mean, data.std, torch.device("cpu"))
    torch.manual_seed(0)
    classifier = Classifier.from_config(config.classifier, data.shape, data.n_classes + 1)
    generator = Generator.from_config(config.inversion, data.shape, data.n_classes)
    pool = torch.zeros((0, *data.shape))
    t0 = time.perf_counter()
    _invert_and_exclude(1, generator, classifier, pool, config, normalize=normalize,
                        rng=torch.Generator().manual_seed(1), id_train=images[0],
                        id_val=images[1])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="data folder (else $NETINV_DATA)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all settings")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = Config.from_flat({**REFERENCE, "data/root": args.data_root})
    data = prepare_data(base)
    images = (data.id_train.images, data.id_val.images)
    configs = {name: Config.from_flat(s, base=base) for name, s in SETTINGS.items()}
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, config in configs.items():
            times[name].append(time_phase(config, data, images))
    base_s = statistics.median(times["baseline"])
    print(json.dumps({"threads": torch.get_num_threads(), "repeats": args.repeats,
                      "phase_s": {n: round(statistics.median(t), 2) for n, t in times.items()},
                      "extra_s": {n: round(statistics.median(t) - base_s, 2)
                                  for n, t in times.items()}}, indent=2))


if __name__ == "__main__":
    main()
