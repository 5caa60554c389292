"""Classifier training and inference throughput per body, width and precision; prints JSON lines.

    python benchmarks/classifier_speed.py                       # the bodies CIFAR-10 uses
    python benchmarks/classifier_speed.py --arch resnet --width 16,24,32 --batch 256
    python benchmarks/classifier_speed.py --threads 2 --steps 6

One line per (arch, width, precision): training images/s (forward, backward and an SGD step on
a random 32x32 RGB batch, K = 11 classes, channels-last, as ``netinv.pipeline``
trains), the seconds that makes per epoch of CIFAR-10's 45,000 training images (after the
5,000 held out for validation), inference images/s through the batch-norm-folded copy with flip
test-time averaging off and on, and the forward FLOPs per image. bf16 rows are skipped where
``netinv.inference.bf16_pays`` says bf16 autocast does not pay (it pays on CUDA, AMX and AMD
Zen 4 and later).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.nn import functional as F

from netinv.inference import CHANNELS_LAST, autocast, bf16_pays, inference_copy, resolve_device
from netinv.models import Classifier
from netinv.optim import FusedOptimizer
from round import forward_flops  # benchmarks/round.py, beside this script

EPOCH_IMAGES = 45_000  # CIFAR-10 train minus the 5,000 validation images


def throughput(arch: str, width: int, amp: bool, *, batch: int, steps: int,
               device: torch.device) -> dict[str, float]:
    """Training and inference images/s of one classifier configuration."""
    torch.manual_seed(0)
    model = Classifier((3, 32, 32), 11, width, arch).to(device, memory_format=CHANNELS_LAST)
    optimizer = FusedOptimizer(model.parameters(), "sgd")
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=CHANNELS_LAST)
    y = torch.randint(0, 11, (batch,), device=device)

    def step() -> None:
        with autocast(device, amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(0.01, 0.9)

    def timed(fn, n: int) -> float:
        fn()  # warm-up (oneDNN primitive creation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    train_s = timed(step, steps)
    figures = {"train_img_s": batch / train_s, "epoch_s": EPOCH_IMAGES * train_s / batch}
    for tta in (False, True):
        model.flip_tta = tta
        frozen = inference_copy(model)

        def infer() -> None:
            with torch.no_grad(), autocast(device, amp):
                frozen(x)

        figures[f"infer_img_s{'_tta' if tta else ''}"] = batch / timed(infer, steps)
    model.flip_tta = False
    figures["forward_mflop"] = forward_flops(inference_copy(model), x[:8]) / 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="cnn,resnet", help="comma list of classifier/arch")
    parser.add_argument("--width", default="16,24,32", help="comma list of classifier/width")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per figure")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    for arch in args.arch.split(","):
        for width in (int(w) for w in args.width.split(",")):
            for amp in (False, True):
                if amp and not bf16_pays(device):
                    continue
                figures = throughput(arch, width, amp, batch=args.batch, steps=args.steps,
                                     device=device)
                print(json.dumps({"arch": arch, "width": width,
                                  "precision": "bf16" if amp else "fp32",
                                  "batch": args.batch, "threads": torch.get_num_threads(),
                                  "device": str(device),
                                  **{k: round(v, 1) for k, v in figures.items()}}), flush=True)


if __name__ == "__main__":
    main()
