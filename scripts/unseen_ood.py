"""Score the shipped detectors (``netinv/presets/*.pt``) on OOD sets that no run, study or choice saw.

    .venv/bin/python scripts/unseen_ood.py --data-root ../shared/data   # docs/results/unseen.json
    .venv/bin/python scripts/results.py page                            # puts it on the page

The presets were chosen on the validation splits of FashionMNIST/MNIST, CIFAR-10 and
TinyImageNet; a detector that only fitted those would fail here. Every set is built offline and
seeded (``SEED``) from what the installed packages ship, so the numbers reproduce anywhere:

- ``letters``: Latin letters (no digit look-alikes such as O, l, S, Z) in Pillow's bundled
  font, white on black, random size, place and tilt; near-OOD for both ID sets, like
  EMNIST-letters / notMNIST.
- ``sklearn-digits``: scikit-learn's 1,797 8 x 8 handwritten digits (UCI), upscaled to MNIST's
  20 x 20 box in a 28 x 28 frame. Handwritten digits from another source: OOD for the
  FashionMNIST detector only (for the MNIST detector they are ID and are not scored).
- ``photo-crops``: random 48 x 48 RGB crops of scikit-learn's two bundled photographs.
- ``negated-id``: the ID test images with inverted pixels (dark strokes on white).
- ``uniform-noise``: i.i.d. uniform pixels (the garbage class only ever saw Gaussian noise).
- ``blobs``: smoothed binary noise with its low values cut to 0 (Hendrycks et al.'s blobs).

Each detector scores the ID test split and every set with its own score (chosen on validation
when it was exported); metrics are netinv's (ID positive for FPR95).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits, load_sample_images

from netinv.data import load_split
from netinv.detector import GARBAGE, Detector
from netinv.metrics import ood_metrics
from netinv.presets import preset_detector_path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "unseen.json"
SEED = 0
COUNT = 2000  # images per generated set
# no digit look-alikes: O/o/Q (0), I/i/j/l (1), S/s (5), Z/z (2), B/b (8, 6), G (6), g/q (9)
LETTERS = "ACDEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
DETECTORS = {name: preset_detector_path(name) for name in ("mnist", "fashionmnist", "cifar10")}
NOT_OOD_FOR = {"sklearn-digits": ("mnist",)}  # sets that are in-distribution for a detector


def letters(rng: np.random.Generator, count: int = COUNT) -> np.ndarray:
    """(count, 28, 28) uint8 letters, white on black, random size 14-22 px, shift, tilt +-20°."""
    fonts = {size: ImageFont.load_default(size=size) for size in range(14, 23)}
    out = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):  # a one-off set builder, not a hot loop
        canvas = Image.new("L", (56, 56))
        char = LETTERS[rng.integers(len(LETTERS))]
        ImageDraw.Draw(canvas).text((28, 28), char, fill=255, anchor="mm",
                                    font=fonts[int(rng.integers(14, 23))])
        canvas = canvas.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
        dx, dy = rng.integers(-3, 4, size=2)
        out[i] = np.asarray(canvas.crop((14 + dx, 14 + dy, 42 + dx, 42 + dy)))
    return out


def sklearn_digits() -> np.ndarray:
    """(1797, 28, 28) uint8: the 8 x 8 digits (0..16) scaled to a 20 x 20 box, 4 px border."""
    small = torch.from_numpy(load_digits().images).float()[:, None] / 16.0  # N, 1, 8, 8
    big = torch.nn.functional.interpolate(small, size=(20, 20), mode="bilinear")
    framed = torch.nn.functional.pad(big, (4, 4, 4, 4))[:, 0]  # N, 28, 28
    return (framed.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def photo_crops(rng: np.random.Generator, count: int = COUNT, side: int = 48) -> np.ndarray:
    """(count, side, side, 3) uint8 random crops of scikit-learn's two sample photographs."""
    photos = load_sample_images().images
    which = rng.integers(len(photos), size=count)
    out = np.empty((count, side, side, 3), np.uint8)
    for i, k in enumerate(which):
        h, w, _ = photos[k].shape
        y, x = rng.integers(h - side), rng.integers(w - side)
        out[i] = photos[k][y:y + side, x:x + side]
    return out


def uniform_noise(rng: np.random.Generator, count: int = COUNT) -> np.ndarray:
    """(count, 28, 28) uint8 i.i.d. uniform pixels."""
    return rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def blobs(rng: np.random.Generator, count: int = COUNT) -> np.ndarray:
    """(count, 28, 28) uint8 blobs as Hendrycks et al. make them: Bernoulli(0.7) pixels,
    Gaussian blur (sigma 1.5), values below 0.75 set to 0."""
    noise = rng.binomial(1, 0.7, size=(count, 28, 28)).astype(np.float32)
    smooth = gaussian_filter(noise, sigma=(0, 1.5, 1.5))
    return (np.where(smooth < 0.75, 0.0, smooth) * 255).round().astype(np.uint8)


def unseen_sets(id_test: np.ndarray) -> dict[str, np.ndarray]:
    """Every unseen set, built from ``SEED``; ``id_test`` (N, C, H, W) uint8 gives negated-id."""
    rng = np.random.default_rng(SEED)
    return {"letters": letters(rng), "sklearn-digits": sklearn_digits(),
            "photo-crops": photo_crops(rng), "negated-id": 255 - id_test[:COUNT],
            "uniform-noise": uniform_noise(rng), "blobs": blobs(rng)}


def evaluate_detector(id_set: str, path: Path, data_root: str | None) -> dict[str, dict]:
    """{set name: metrics + garbage_share} of the detector at ``path`` against its ID test."""
    detector = Detector.load(path)
    id_test = load_split(id_set, "test", root=data_root, download=False).images.numpy()
    id_scores = detector.score(id_test)
    rows = {}
    for name, images in unseen_sets(id_test).items():
        if id_set in NOT_OOD_FOR.get(name, ()):
            continue
        scores = detector.score(images)
        share = np.mean([c == GARBAGE for c in detector.predict(images)])
        rows[name] = {**ood_metrics(id_scores, scores), "garbage_share": float(share),
                      "count": len(images), "score": detector.score_name}
        print(f"  {id_set} vs {name}: AUROC {rows[name]['auroc']:.4f}, "
              f"FPR95 {rows[name]['fpr95']:.4f}, to garbage {100 * share:.1f}%", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("NETINV_DATA"))
    args = parser.parse_args(argv)
    result = {id_set: evaluate_detector(id_set, path, args.data_root)
              for id_set, path in DETECTORS.items()}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
