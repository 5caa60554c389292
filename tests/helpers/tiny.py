"""Tiny real netinv objects for unit tests: an untrained small classifier, its detector and a
round state (no data, no training; built in milliseconds)."""

from __future__ import annotations

import torch

from netinv.detector import Detector
from netinv.models import Classifier, Generator
from netinv.state import RoundState, snapshot

SHAPE = (1, 28, 28)
CLASSES = tuple(str(i) for i in range(10))


def tiny_classifier(seed: int = 0) -> Classifier:
    """A width-4 (n + 1 = 11)-class classifier over 1 x 28 x 28 images, seeded weights."""
    torch.manual_seed(seed)
    return Classifier(SHAPE, len(CLASSES) + 1, width=4)


def tiny_detector() -> Detector:
    """An untrained :class:`Detector` over MNIST-like input with MNIST's statistics."""
    return Detector(tiny_classifier(), shape=SHAPE, mean=(0.1307,), std=(0.3081,),
                    classes=CLASSES, config={"data/id": "mnist"})


def tiny_state() -> RoundState:
    """A round-1 :class:`RoundState` of tiny untrained models (every field filled)."""
    classifier = tiny_classifier()
    generator = Generator(SHAPE, len(CLASSES), latent_dim=4, width=4)
    return RoundState(
        round=1, config={"data/id": "mnist"}, classifier=snapshot(classifier),
        classifier_spec=classifier.spec(), generator=snapshot(generator),
        generator_spec=generator.spec(), garbage_pool=torch.zeros(3, *SHAPE),
        records=[{"round": 0}, {"round": 1}], grid=torch.zeros(80, *SHAPE, dtype=torch.uint8),
        test_scores={"id": {"ue": torch.zeros(5)}}, shape=list(SHAPE), mean=[0.1307],
        std=[0.3081], classes=list(CLASSES))
