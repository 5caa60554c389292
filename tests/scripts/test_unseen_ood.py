"""scripts/unseen_ood.py: the offline OOD sets that check the shipped detectors generalise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("unseen_ood", REPO / "scripts" / "unseen_ood.py")
unseen_ood = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unseen_ood)


def test_sets_are_seeded_images_of_the_stated_kinds() -> None:
    id_test = np.random.default_rng(1).integers(0, 256, (50, 1, 28, 28), dtype=np.uint8)
    sets = unseen_ood.unseen_sets(id_test)
    again = unseen_ood.unseen_sets(id_test)
    assert set(sets) == {"letters", "sklearn-digits", "photo-crops", "negated-id",
                         "uniform-noise", "blobs"}
    for name, images in sets.items():
        assert images.dtype == np.uint8 and len(images) >= 50, name
        assert np.array_equal(images, again[name]), f"{name} is not reproducible"
    assert sets["photo-crops"].shape[1:] == (48, 48, 3)
    assert np.array_equal(sets["negated-id"], 255 - id_test)
    letters = sets["letters"]
    ink = (letters > 128).mean(axis=(1, 2))
    assert ink.min() > 0.01 and ink.max() < 0.5  # every image shows a glyph, on black
    # the digits sit in MNIST's 20 x 20 box: the 4-pixel border is empty
    digits = sets["sklearn-digits"]
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False
    assert digits.shape == (1797, 28, 28) and digits[:, border].max() == 0
    assert digits.max() == 255
    blobs = sets["blobs"]
    assert 0.05 < (blobs > 0).mean() < 0.95
