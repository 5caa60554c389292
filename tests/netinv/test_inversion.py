"""netinv.inversion: each loss term on hand-computed cases; training lowers the loss."""

from __future__ import annotations

import math

import pytest
import torch

from netinv.config import InversionConfig
from netinv.inversion import (
    NonFiniteLossError,
    ce_loss,
    cosine_loss,
    inversion_loss,
    kl_loss,
    ortho_loss,
    sample_images,
    train_generator,
)
from netinv.models import Classifier, Generator


def test_kl_is_zero_when_q_matches_p_and_positive_otherwise() -> None:
    p = torch.tensor([[0.7, 0.3]])
    logits = torch.log(torch.tensor([[0.7, 0.3, 1e-9]]))  # garbage mass ~ 0
    assert kl_loss(p, logits).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 3)  # Q = 1/3 each
    expected = 0.7 * math.log(0.7 * 3) + 0.3 * math.log(0.3 * 3)
    assert kl_loss(p, uniform).item() == pytest.approx(expected, rel=1e-5)


def test_ce_uses_argmax_of_p() -> None:
    p = torch.tensor([[0.2, 0.8]])
    assert ce_loss(p, torch.zeros(1, 3)).item() == pytest.approx(math.log(3), rel=1e-6)


def test_cosine_and_ortho_by_hand() -> None:
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert cosine_loss(same).item() == pytest.approx(1.0)
    assert cosine_loss(orthogonal).item() == pytest.approx(0.0)
    assert ortho_loss(orthogonal).item() == pytest.approx(0.0)
    # Gram of `same` is all ones: deviation from I is 1 in the 2 off-diagonal cells -> 2/4
    assert ortho_loss(same).item() == pytest.approx(0.5)


def test_inversion_loss_is_the_weighted_sum() -> None:
    config = InversionConfig(alpha_kl=2.0, beta_ce=0.5, gamma_cosine=3.0, delta_ortho=0.0)
    p = torch.softmax(torch.randn(4, 3), dim=1)
    logits, feats = torch.randn(4, 4), torch.randn(4, 8)
    total, terms = inversion_loss(config, p, logits, feats)
    expected = 2.0 * kl_loss(p, logits) + 0.5 * ce_loss(p, logits) + 3.0 * cosine_loss(feats)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["ortho"].item() == pytest.approx(ortho_loss(feats).item(), rel=1e-6)
    assert set(terms) == {"kl", "ce", "cosine", "ortho"}


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


def _brightness_classifier() -> Classifier:
    """A classifier that tells dark (0), mid-grey (1) and bright (2) images apart."""
    classifier = Classifier((1, 28, 28), num_classes=4, width=8)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2)
    for _ in range(60):
        labels = torch.randint(0, 3, (64,))
        images = (labels.float() / 2).view(-1, 1, 1, 1) + 0.1 * torch.randn(64, 1, 28, 28)
        loss = torch.nn.functional.cross_entropy(classifier(_normalize(images.clamp(0, 1))),
                                                 labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return classifier


def test_training_makes_the_classifier_assign_the_hidden_label() -> None:
    torch.manual_seed(0)
    classifier = _brightness_classifier()
    generator = Generator((1, 28, 28), n_classes=3, latent_dim=8, width=8, dropout=0.0)
    labels = torch.arange(3).repeat(20)
    rng = torch.Generator().manual_seed(0)

    def agreement() -> float:
        classifier.eval()
        with torch.no_grad():
            images = sample_images(generator, labels, torch.Generator().manual_seed(1))
            return (classifier(_normalize(images)).argmax(1) == labels).float().mean().item()

    before = agreement()
    config = InversionConfig(steps=150, batch_size=16, lr=5e-3)
    weights_before = [p.clone() for p in classifier.parameters()]
    losses = train_generator(generator, classifier, config, normalize=_normalize, rng=rng)
    assert set(losses) == {"loss", "kl", "ce", "cosine", "ortho"}
    assert agreement() > max(before, 0.9)
    # the classifier is frozen: its weights did not move, and trainable again afterwards
    assert all(torch.equal(a, b) for a, b in zip(weights_before, classifier.parameters()))
    assert all(p.requires_grad for p in classifier.parameters())


def test_non_finite_loss_raises() -> None:
    classifier = Classifier((1, 28, 28), num_classes=3, width=4)
    generator = Generator((1, 28, 28), n_classes=2, latent_dim=4, width=4)
    with pytest.raises(NonFiniteLossError):
        train_generator(generator, classifier, InversionConfig(steps=2, batch_size=4),
                        normalize=lambda x: x * float("nan"), rng=torch.Generator())
