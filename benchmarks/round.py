"""Time one pipeline round of the fixed reference configuration and print JSON.

    python benchmarks/round.py --data-root ../shared/data            # this machine's device
    python benchmarks/round.py --data-root ../shared/data --no-amp   # fp32, for comparison
    python benchmarks/round.py --data-root ../shared/data --naive    # the straightforward baseline
    python benchmarks/round.py --data-root ../shared/data --compare 2   # naive vs reference, alternately
    python benchmarks/round.py --data-root ../shared/data --profile 25  # top ops of the timed round
    python benchmarks/round.py --data-root ../shared/data --set classifier/shift=1   # an option's cost

Reference round: MNIST ID (full 60k train), 1 classifier epoch, 200 generator steps,
2,000 inverted images, evaluation on the FashionMNIST, CIFAR-10 (JPEG) and TinyImageNet test
sets. Round 0 (noise-only training) runs first as warm-up; round 1 (invert -> exclude -> train
-> evaluate) is timed. Data preparation (decoding, cached on disk) is not part of a round.
Prints seconds per round, its split, images per second, achieved GFLOPS of training and
inversion, ID accuracy and each score's mean test AUROC, peak memory, and the classifier's and generator's
parameter counts and forward FLOPs per image. ``--compare N`` instead times the naive round and
the reference round alternately in this one process and prints both and their ratios (to the
whole naive round, and to it with only the ID-test part of its evaluation). Every timed round
comes with ``core_to_core_ns``, read right before and after it (``core_latency.py``): on the
project's 2-vCPU guests a 2-thread round runs about 35% slower while the host keeps the two
vCPUs far apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from typing import Any

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from core_latency import core_to_core_ns

from netinv.config import Config
from netinv.data import PreparedData
from netinv.inference import resolve_device, uses_bf16
from netinv.models import Classifier, Generator, parameter_count
from netinv.pipeline import prepare_data, run_rounds
from netinv.scores import SCORES

REFERENCE = {
    "data/id": "mnist", "data/ood": "fashionmnist,cifar10,tinyimagenet",
    "classifier/epochs": 1, "inversion/steps": 200, "inversion/samples_per_round": 2000,
    "rounds/count": 1,
}


def forward_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass per image (torch's flop counter; a multiply-add = 2 FLOPs)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // inputs[0].shape[0]


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PilImages(torch.utils.data.Dataset):
    """uint8 (N, 1, H, W) images and labels served one at a time as torchvision's ``MNIST``
    serves them: each item becomes a PIL image, then ``transform`` runs on it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(Image.fromarray(self.images[i, 0].numpy(), mode="L")), self.labels[i]


def naive_round(config: Config, data: PreparedData, device: torch.device) -> dict[str, float]:
    """The straightforward implementation of the same round, for before/after figures.

    The same images as the reference round (``data``: ID train minus val, ID val and test,
    every OOD set's val and test part), served one at a time through ``DataLoader`` with
    per-sample ``ToTensor``/``Normalize`` (as torchvision's ``MNIST`` does), fp32, batch 64, a
    220k-parameter CNN with max pooling, ``torch.optim.Adam``: ``config``'s generator steps,
    its images per round generated and scored by the classifier (the exclusion step), one epoch
    on ID train plus a garbage pool of its noise count and the generated images, then msp,
    energy and p_garbage on every split with scikit-learn's AUROC. Returns seconds per phase;
    ``evaluate_id_test_s`` is the ID test part alone (what earlier versions timed as the whole
    evaluation, a lower bound).
    """
    from sklearn.metrics import roc_auc_score
    from torch import nn
    from torch.utils.data import ConcatDataset, DataLoader, TensorDataset
    from torchvision import transforms

    n = data.n_classes
    steps, samples = config.inversion.steps, config.inversion.samples_per_round
    noise = config.garbage.noise_count
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 49, 64), nn.ReLU(),
                          nn.Linear(64, n + 1)).to(device)
    gen = nn.Sequential(nn.Linear(64 + n, 128 * 49), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
                        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
                        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Sigmoid()).to(device)
    mean, std = data.mean[0], data.std[0]

    def generate(labels: torch.Tensor) -> torch.Tensor:
        z = torch.cat([torch.randn(len(labels), 64, device=device),
                       nn.functional.one_hot(labels, n).float()], 1)
        return gen(z)  # B, 1, 28, 28 in [0, 1]

    times = {}
    t0 = time.perf_counter()
    opt = torch.optim.Adam(gen.parameters(), 1e-3)
    for _ in range(steps):
        labels = torch.randint(0, n, (64,), device=device)
        loss = nn.functional.cross_entropy(model((generate(labels) - mean) / std), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    kept = []
    with torch.no_grad():
        for labels in torch.randint(0, n, (samples,), device=device).split(64):
            images = generate(labels)
            garbage = model((images - mean) / std).softmax(1)[:, n]
            kept.append(images[garbage < 0.5])  # the exclusion step: drop what is garbage already
    pool = torch.cat([torch.rand(noise, 1, 28, 28, device=device), *kept])
    times["invert_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train = ConcatDataset([PilImages(data.id_train.images, data.id_train.labels, tf),
                           TensorDataset(((pool - mean) / std).cpu(),
                                         torch.full((len(pool),), n))])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for x, y in DataLoader(train, batch_size=64, shuffle=True):
        loss = nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    times["train_s"] = time.perf_counter() - t0

    scored = []  # images per scored split

    def scores(images: torch.Tensor) -> dict[str, torch.Tensor]:
        scored.append(len(images))
        logits = []
        with torch.no_grad():
            for x, _ in DataLoader(PilImages(images, torch.zeros(len(images)), tf),
                                   batch_size=64):
                logits.append(model(x.to(device)).cpu())
        logits = torch.cat(logits)
        probs = logits.softmax(1)
        return {"msp": -probs[:, :n].max(1).values, "p_garbage": probs[:, n],
                "energy": -torch.logsumexp(logits[:, :n], 1)}

    t0 = time.perf_counter()
    id_test = scores(data.id_test.images)
    times["evaluate_id_test_s"] = time.perf_counter() - t0
    id_scores = {"val": scores(data.id_val.images), "test": id_test}
    for parts in data.ood.values():
        for split, images in parts.items():
            ood = scores(images)
            for name, values in ood.items():
                roc_auc_score(torch.cat([torch.zeros(len(id_scores[split][name])),
                                         torch.ones(len(values))]),
                              torch.cat([id_scores[split][name], values]))
    times["evaluate_s"] = time.perf_counter() - t0
    times["round_s"] = times["invert_s"] + times["train_s"] + times["evaluate_s"]
    times["eval_images"] = sum(scored)
    times["classifier_params"] = parameter_count(model)
    return times


def reference_round(config: Config, data: PreparedData, *, profile_rows: int = 0
                    ) -> tuple[dict[str, Any], str | None]:
    """Run round 0 (warm-up) and round 1 of ``config``; return round 1's record and, with
    ``profile_rows`` > 0, torch.profiler's table (CPU, shapes recorded) of round 1 alone: that
    many ops by self CPU time, then by input shape. The record gets ``core_to_core_ns``: the
    latency read right before round 1 and right after it (:func:`core_to_core_ns`)."""
    profiler = None
    placement = []
    if profile_rows > 0:
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          record_shapes=True)

    def start_after_round_0(record: dict[str, Any], _state: object) -> None:
        if record["round"] == 0:
            placement.append(core_to_core_ns())  # outside round 1's clock, as the profiler
            if profiler is not None:
                profiler.start()

    timed = run_rounds(config, data=data, on_round=start_after_round_0).records[1]
    timed["core_to_core_ns"] = [*placement, core_to_core_ns()]
    if profiler is None:
        return timed, None
    profiler.stop()
    table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile_rows,
                                          max_name_column_width=40)
    by_shape = profiler.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=profile_rows, max_name_column_width=35,
        max_shapes_column_width=70)
    return timed, table + "\n" + by_shape


def model_figures(config: Config, data: PreparedData) -> dict[str, int]:
    """Parameter counts and forward FLOPs per image of the run's classifier and generator."""
    shape, n = data.shape, data.n_classes
    classifier = Classifier.from_config(config.classifier, shape, n + 1)
    generator = Generator.from_config(config.inversion, shape, n).eval()
    _, vector, matrix = generator.cond.sample(torch.arange(n))
    return {
        "classifier_params": parameter_count(classifier),
        "generator_params": parameter_count(generator),
        "classifier_flops_per_image": forward_flops(classifier, torch.zeros(8, *shape)),
        "generator_flops_per_image": forward_flops(
            generator, torch.zeros(n, config.inversion.latent_dim), vector, matrix),
    }


def round_figures(config: Config, data: PreparedData, timed: dict[str, Any],
                  models: dict[str, int]) -> dict[str, Any]:
    """Seconds, images per second and achieved GFLOPS of one timed round.

    GFLOPS count a training step as 3x the forward FLOPs (forward, input and weight gradients)
    and the frozen classifier inside inversion as 2x (no weight gradients).
    """
    train_images = len(data.id_train) + timed["garbage_size"]
    generated = config.inversion.steps * config.inversion.batch_size
    eval_images = len(data.id_test) + sum(len(s["test"]) + len(s["val"])
                                           for s in data.ood.values()) + len(data.id_val)
    c_flops, g_flops = models["classifier_flops_per_image"], models["generator_flops_per_image"]
    return {
        "round_s": round(timed["time_round_s"], 3),
        "train_s": round(timed["time_train_s"], 3),
        "invert_s": round(timed["time_invert_s"] + timed["time_exclude_s"], 3),
        "evaluate_s": round(timed["time_eval_s"], 3),
        "train_images_per_s": round(train_images / timed["time_train_s"]),
        "generator_images_per_s": round(generated / timed["time_invert_s"]),
        "eval_images": eval_images,
        "eval_images_per_s": round(eval_images / timed["time_eval_s"]),
        "train_gflops": round(3 * c_flops * train_images / timed["time_train_s"] / 1e9, 1),
        "invert_gflops": round((3 * g_flops + 2 * c_flops) * generated
                               / timed["time_invert_s"] / 1e9, 1),
        "id_test_accuracy": round(timed["id_test_accuracy"], 4),
        "mean_test_auroc": {score: round(mean_test_auroc(timed, score), 4) for score in SCORES},
    }


def mean_test_auroc(record: dict[str, Any], score: str) -> float:
    """Mean test-split AUROC of ``score`` over the record's OOD sets."""
    values = [row["auroc"] for row in record["ood"]
              if row["split"] == "test" and row["score"] == score]
    return sum(values) / len(values)


def compare(config: Config, data: PreparedData, device: torch.device, repeats: int
            ) -> dict[str, Any]:
    """Time the naive round and the reference round alternately, ``repeats`` times each, in
    this process (the machine's load hits both alike). Ratios of minima and of medians, against
    the naive round as a whole and against its lower bound that evaluates ID test alone. Beside
    each round's seconds: the core-to-core latency read right before and right after it
    (:func:`core_to_core_ns`; on the 2-vCPU guests it tells where the host had put the vCPUs).
    """
    naive, lower, reference = [], [], []
    naive_ns, reference_ns = [], []
    for _ in range(repeats):
        before = core_to_core_ns()
        times = naive_round(config, data, device)
        naive_ns.append([before, core_to_core_ns()])
        naive.append(times["round_s"])
        lower.append(times["round_s"] - times["evaluate_s"] + times["evaluate_id_test_s"])
        timed = reference_round(config, data)[0]
        reference_ns.append(timed["core_to_core_ns"])
        reference.append(timed["time_round_s"])

    def ratios(baseline: list[float]) -> dict[str, float]:
        return {"of_minima": round(min(baseline) / min(reference), 2),
                "of_medians": round(statistics.median(baseline)
                                    / statistics.median(reference), 2)}

    return {"naive_round_s": [round(t, 3) for t in naive],
            "naive_id_test_eval_only_s": [round(t, 3) for t in lower],
            "reference_round_s": [round(t, 3) for t in reference],
            "reference_id_test_accuracy": round(timed["id_test_accuracy"], 4),
            "naive_core_to_core_ns": naive_ns, "reference_core_to_core_ns": reference_ns,
            "ratio": ratios(naive), "ratio_to_id_test_eval_only": ratios(lower)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None, help="data folder (else $NETINV_DATA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    parser.add_argument("--naive", action="store_true", help="time the straightforward baseline")
    parser.add_argument("--compare", type=int, default=0, metavar="N",
                        help="time naive and reference rounds alternately, N times each")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="print torch.profiler's top ROWS ops of the timed round to stderr")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a reference setting, e.g. classifier/shift=1 (repeatable)")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.set):
        parser.error(f"--set takes KEY=VALUE, got {args.set}")
    if args.compare < 0 or args.profile < 0:
        parser.error(f"--compare and --profile take N >= 0, got compare={args.compare}, "
                     f"profile={args.profile}")
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = {"device": str(device), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    config = Config.from_flat({**REFERENCE, **overrides, "data/root": args.data_root,
                               "rounds/device": args.device, "rounds/amp": not args.no_amp})
    import torchvision  # noqa: F401  (loaded by prepare anyway; counted in the library baseline)

    rss_libraries = peak_rss_mib()
    t0 = time.perf_counter()
    data = prepare_data(config)
    prepare_s = time.perf_counter() - t0
    if (args.naive or args.compare) and data.shape != (1, 28, 28):
        parser.error(f"the naive round is written for 1x28x28 ID sets (MNIST, FashionMNIST), "
                     f"got data/id={config.data.id!r} of shape {data.shape}")
    if args.naive:
        times = naive_round(config, data, device)
        print(json.dumps({**info, "implementation": "naive", **times}, indent=2))
        return
    if args.compare:
        print(json.dumps({**info, "overrides": overrides,
                          **compare(config, data, device, args.compare)}, indent=2))
        return
    rss_before = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed, table = reference_round(config, data, profile_rows=args.profile)
    if table is not None:
        print(table, file=sys.stderr)
    models = model_figures(config, data)
    out = {
        **info, "implementation": "netinv", "amp": config.rounds.amp,
        "bf16_used": uses_bf16(device, config.rounds.amp), "overrides": overrides,
        **round_figures(config, data, timed, models),
        "core_to_core_ns": timed["core_to_core_ns"],  # right before and after the round
        "prepare_s (cached decode, not in round)": round(prepare_s, 3),
        "peak_rss_mib": round(peak_rss_mib()),
        "rss_after_imports_mib": round(rss_libraries),  # torch + torchvision (CUDA build) alone
        "peak_rss_before_rounds_mib": round(rss_before),
        **models,
    }
    if device.type == "cuda":
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
