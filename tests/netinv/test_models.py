"""netinv.models: shapes of the classifier, the conditioning and the generator."""

from __future__ import annotations

import pytest
import torch

from netinv.config import CONDITIONINGS
from netinv.models import Classifier, Conditioning, Generator, PlainClassifier, parameter_count


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 32, 32)])
def test_classifier_logits_and_features(shape: tuple[int, int, int]) -> None:
    model = Classifier(shape, num_classes=11, width=8)
    logits, feats = model(torch.zeros(4, *shape), with_features=True)
    assert logits.shape == (4, 11)
    assert feats.shape == (4, model.feature_dim)
    assert model(torch.zeros(2, *shape)).shape == (2, 11)


@pytest.mark.parametrize("kind", CONDITIONINGS)
def test_conditioning_hides_the_label(kind: str) -> None:
    cond = Conditioning(kind, n_classes=10, grid=7)
    labels = torch.arange(10).repeat(3)
    soft, vector, matrix = cond.sample(labels, torch.Generator().manual_seed(0))
    assert soft.shape == (30, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(30))
    assert torch.equal(soft.argmax(dim=1), labels)
    assert (vector is not None) == (kind in ("label", "vector", "vector+matrix"))
    assert (matrix is not None) == (kind in ("matrix", "vector+matrix"))
    if matrix is not None:
        assert matrix.shape == (30, 1, 7, 7)
        # the label's cells (index mod n == label) carry the raised values
        group_means = torch.stack([matrix.view(30, -1)[:, cond.cell_class.view(-1) == c].mean(1)
                                   for c in range(10)], dim=1)
        assert torch.equal(group_means.argmax(dim=1), labels)
    if kind in ("vector", "vector+matrix"):
        assert (soft.max(dim=1).values < 1.0).all()  # soft, not one-hot


@pytest.mark.parametrize("kind", CONDITIONINGS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_makes_images_in_pixel_range(kind: str, shape: tuple[int, int, int]) -> None:
    gen = Generator(shape, n_classes=10, latent_dim=16, width=8, conditioning=kind, dropout=0.5)
    images, soft = gen.sample(torch.arange(10), torch.Generator().manual_seed(0))
    assert images.shape == (10, *shape)
    assert images.min() >= 0 and images.max() <= 1
    assert soft.shape == (10, 10)
    assert parameter_count(gen) > 0


def test_plain_classifier_is_exactly_the_n_class_softmax() -> None:
    model = PlainClassifier((1, 28, 28), n_classes=10, width=8).eval()
    images = torch.randn(6, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (6, 11) and model.num_classes == 11
    plain = model.inner(images).softmax(dim=1)  # the n-class model's own softmax
    assert torch.equal(logits.softmax(dim=1)[:, -1], torch.zeros(6))  # garbage: exactly 0
    torch.testing.assert_close(logits.softmax(dim=1)[:, :10], plain)
    assert list(model.parameters()) == list(model.inner.parameters())  # nothing for garbage
    assert torch.all(logits[:, -1] == PlainClassifier.GARBAGE_LOGIT)
