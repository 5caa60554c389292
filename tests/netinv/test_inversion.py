"""netinv.inversion: each loss term and prior on hand-computed cases; training lowers the loss;
the BatchNorm hooks are gone afterwards."""

from __future__ import annotations

import math

import pytest
import torch

from netinv.config import InversionConfig
from netinv.inference import Normalizer
from netinv.inversion import (
    NonFiniteLossError,
    batch_stats,
    bn_input_stats,
    bn_targets,
    ce_loss,
    cosine_loss,
    feature_stats_loss,
    inversion_loss,
    kl_loss,
    l2_loss,
    mode_seeking_loss,
    ortho_loss,
    sample_images,
    tv_loss,
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


# ----------------------------------------------------------------------------- priors


def test_tv_of_a_constant_image_is_zero_and_of_a_checkerboard_two() -> None:
    assert tv_loss(torch.full((2, 3, 8, 8), 0.7)).item() == 0.0
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checkerboard = ((rows + cols) % 2).float().view(1, 1, 8, 8)
    assert tv_loss(checkerboard).item() == pytest.approx(2.0)
    # vertical stripes: only horizontal neighbours differ, by 1 -> 1 + 0
    assert tv_loss((cols % 2).float().view(1, 1, 8, 8)).item() == pytest.approx(1.0)


def test_l2_is_the_mean_squared_input() -> None:
    assert l2_loss(torch.tensor([[[[1.0, -3.0]]]])).item() == pytest.approx(5.0)
    assert l2_loss(torch.zeros(2, 1, 4, 4)).item() == 0.0


def test_feature_stats_loss_is_zero_on_target_and_the_norms_otherwise() -> None:
    x = torch.randn(16, 3, 5, 5)
    stats = [batch_stats(x), batch_stats(2 * x)]
    assert feature_stats_loss(stats, stats).item() == 0.0
    mean, var = stats[0]
    shifted = [(mean + torch.tensor([3.0, 0.0, 0.0]), var + torch.tensor([0.0, 4.0, 0.0])),
               stats[1]]
    assert feature_stats_loss(shifted, stats).item() == pytest.approx(3.0 + 4.0)
    with pytest.raises(ValueError, match="one entry per BatchNorm layer"):
        feature_stats_loss(stats[:1], stats)


def test_mode_seeking_falls_when_paired_images_differ_more() -> None:
    z = torch.cat([torch.zeros(4, 8), torch.ones(4, 8)])  # |z1 - z2| = 1 everywhere
    base = torch.full((4, 1, 6, 6), 0.5)
    close = torch.cat([base, base + 0.1])
    far = torch.cat([base, base + 0.4])
    assert mode_seeking_loss(close, z).item() == pytest.approx(1 / (0.1 + 1e-5), rel=1e-4)
    assert mode_seeking_loss(far, z).item() < mode_seeking_loss(close, z).item()


def test_bn_input_stats_sees_each_bn_input_and_removes_its_hooks() -> None:
    classifier = Classifier((1, 28, 28), num_classes=3, width=4).eval()
    x = torch.randn(8, 1, 28, 28)
    with bn_input_stats(classifier) as stats:
        classifier(x)
    assert len(stats) == 3  # one BatchNorm per conv block
    first_conv = classifier.body[0]
    mean, var = batch_stats(first_conv(x))
    assert torch.allclose(stats[0][0], mean) and torch.allclose(stats[0][1], var)
    assert all(not m._forward_pre_hooks for m in classifier.modules())


def test_bn_targets_running_and_id() -> None:
    classifier = Classifier((1, 28, 28), num_classes=3, width=4).eval()
    running = bn_targets(classifier, "running")
    assert torch.equal(running[0][0], classifier.body[1].running_mean)
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    normalize = Normalizer((0.5,), (0.5,), torch.device("cpu"))
    pooled = bn_targets(classifier, "id", id_images=images, normalize=normalize, batch_size=3)
    with bn_input_stats(classifier) as whole:  # one batch of all 10 = the pooled statistics
        classifier(normalize(images))
    for (m, v), (wm, wv) in zip(pooled, whole):
        assert torch.allclose(m, wm, atol=1e-5) and torch.allclose(v, wv, atol=1e-4)
    with pytest.raises(ValueError, match="'running', or 'id'"):
        bn_targets(classifier, "id")
    # test-time translation adds no second set of layers: the same targets, setting kept
    classifier.tta_shift = 1
    shifted = bn_targets(classifier, "id", id_images=images, normalize=normalize, batch_size=3)
    assert len(shifted) == len(pooled) and classifier.tta_shift == 1
    for (m, v), (sm, sv) in zip(pooled, shifted):
        assert torch.equal(m, sm) and torch.equal(v, sv)


def test_inversion_loss_adds_only_the_priors_with_weight() -> None:
    config = InversionConfig(gamma_cosine=0.0, delta_ortho=0.0, tv=2.0, l2=0.5)
    p = torch.softmax(torch.randn(4, 3), dim=1)
    logits, feats = torch.randn(4, 4), torch.randn(4, 8)
    images = torch.rand(4, 1, 6, 6)
    total, terms = inversion_loss(config, p, logits, feats, images=images, inputs=images - 0.5)
    expected = (kl_loss(p, logits) + ce_loss(p, logits) + 2.0 * tv_loss(images)
                + 0.5 * l2_loss(images - 0.5))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(terms) == {"kl", "ce", "cosine", "ortho", "tv", "l2"}


def test_training_with_every_prior_reports_them_and_leaves_no_hooks() -> None:
    torch.manual_seed(0)
    classifier = _brightness_classifier()
    generator = Generator((1, 28, 28), n_classes=3, latent_dim=8, width=8, dropout=0.0)
    config = InversionConfig(steps=4, batch_size=8, feature_stats=1.0, tv=1.0, l2=0.1,
                             diversity=0.1)
    losses = train_generator(generator, classifier, config, normalize=_normalize,
                             rng=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss", "kl", "ce", "cosine", "ortho", "feature_stats", "tv", "l2",
                           "diversity"}
    assert all(math.isfinite(v) for v in losses.values())
    assert all(not m._forward_pre_hooks for m in classifier.modules())


def test_mode_seeking_makes_the_generator_use_z() -> None:
    """With dropout off, the diversity term spreads same-label images further apart."""
    classifier = _brightness_classifier()

    def spread(diversity: float) -> float:
        torch.manual_seed(1)
        generator = Generator((1, 28, 28), n_classes=3, latent_dim=8, width=8, dropout=0.0)
        config = InversionConfig(steps=60, batch_size=16, lr=5e-3, diversity=diversity)
        train_generator(generator, classifier, config, normalize=_normalize,
                        rng=torch.Generator().manual_seed(0))
        images = sample_images(generator, torch.zeros(32, dtype=torch.long),
                               torch.Generator().manual_seed(2))
        return torch.cdist(images.flatten(1), images.flatten(1)).mean().item()

    assert spread(1.0) > 1.5 * spread(0.0)


def test_the_generator_is_fit_to_single_images_not_the_test_time_average() -> None:
    """A classifier with test-time averaging (mirror and translated views) is inverted as it
    sees one image: the same generator as for that classifier without it, and the classifier
    keeps its setting."""
    torch.manual_seed(0)
    plain = Classifier((3, 32, 32), num_classes=4, width=8, arch="resnet").eval()
    flipping = Classifier((3, 32, 32), num_classes=4, width=8, arch="resnet", flip_tta=True,
                          tta_shift=1)
    flipping.load_state_dict(plain.state_dict())
    flipping.eval()
    config = InversionConfig(steps=3, batch_size=8, feature_stats=1.0)
    normalize = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    generators = []
    for classifier in (plain, flipping):
        torch.manual_seed(1)
        generator = Generator((3, 32, 32), n_classes=3, latent_dim=8, width=8, dropout=0.0)
        train_generator(generator, classifier, config, normalize=normalize,
                        rng=torch.Generator().manual_seed(0))
        generators.append(generator.state_dict())
    for key, value in generators[0].items():
        torch.testing.assert_close(generators[1][key], value)
    assert flipping.flip_tta and flipping.tta_shift == 1
