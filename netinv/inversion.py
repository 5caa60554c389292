"""Network inversion: train a conditional generator against the frozen classifier.

The generator G(z, c) learns to produce images that the current classifier assigns to the
label hidden in the conditioning c (arXiv 2411.17777). The loss is

.. math::

    L = \\alpha\\, KL(P \\| Q) + \\beta\\, CE(Q, \\arg\\max P)
        + \\gamma\\, \\cos + \\delta\\, \\mathrm{ortho}

with P the soft conditioning vector (n classes, zero mass on garbage), Q the classifier's softmax
over K = n + 1 classes on G's image, cos the mean pairwise cosine similarity of the classifier's
penultimate features over the batch (pushes samples apart), and ortho the mean squared deviation
of the batch's normalised feature Gram matrix from the identity (pushes features towards
orthogonality). Each term is a pure function below; :func:`inversion_loss` sums them once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from netinv.config import InversionConfig
from netinv.inference import Normalizer, autocast, inference_copy
from netinv.models import Classifier, Generator
from netinv.progress import track

LOSS_TERMS = ("kl", "ce", "cosine", "ortho")


def kl_loss(target: Tensor, logits: Tensor) -> Tensor:
    """KL(P || Q), batch mean.

    Args:
        target: P, shape (B, n), rows sum to 1 (no garbage mass).
        logits: Classifier logits, shape (B, K), K = n + 1; Q = softmax(logits).

    Returns:
        Scalar >= 0.
    """
    log_q = logits.float().log_softmax(dim=1)[:, : target.shape[1]]  # B, n
    p = target.float()
    return (p * (p.clamp_min(1e-12).log() - log_q)).sum(dim=1).mean()


def ce_loss(target: Tensor, logits: Tensor) -> Tensor:
    """Cross-entropy of Q against the hard label argmax P, batch mean; scalar >= 0."""
    return F.cross_entropy(logits.float(), target.argmax(dim=1))


def _unit_gram(features: Tensor) -> Tensor:
    unit = F.normalize(features.float(), dim=1)  # B, F
    return unit @ unit.T  # B, B


def _cosine_from_gram(gram: Tensor) -> Tensor:
    batch = gram.shape[0]
    return (gram.sum() - gram.diagonal().sum()) / (batch * (batch - 1))


def _ortho_from_gram(gram: Tensor) -> Tensor:
    return (gram - torch.eye(gram.shape[0], device=gram.device)).pow(2).mean()


def cosine_loss(features: Tensor) -> Tensor:
    """Mean pairwise cosine similarity of features over distinct pairs (i != j).

    Args:
        features: Penultimate features, shape (B, F), B >= 2.

    Returns:
        Scalar in [-1, 1]; lower means more diverse samples.
    """
    return _cosine_from_gram(_unit_gram(features))


def ortho_loss(features: Tensor) -> Tensor:
    """Mean squared deviation of the normalised feature Gram matrix from the identity.

    .. math:: \\frac{1}{B^2} \\| \\hat F \\hat F^T - I \\|_F^2, \\quad \\hat F = F / \\|F\\|_{row}

    Returns:
        Scalar in [0, 1]; 0 when the batch's features are mutually orthogonal.
    """
    return _ortho_from_gram(_unit_gram(features))


def inversion_loss(config: InversionConfig, target: Tensor, logits: Tensor, features: Tensor
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted inversion loss and its unweighted terms.

    Returns:
        (total scalar, {"kl", "ce", "cosine", "ortho"} -> scalar tensors, detached).
    """
    gram = _unit_gram(features)  # B, B; shared by the cosine and orthogonality terms
    terms = {
        "kl": kl_loss(target, logits),
        "ce": ce_loss(target, logits),
        "cosine": _cosine_from_gram(gram),
        "ortho": _ortho_from_gram(gram),
    }
    weights = (config.alpha_kl, config.beta_ce, config.gamma_cosine, config.delta_ortho)
    total = sum(w * terms[name] for w, name in zip(weights, LOSS_TERMS) if w > 0)
    return total, {name: value.detach() for name, value in terms.items()}


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the run cannot continue with these settings."""


def train_generator(generator: Generator, classifier: Classifier, config: InversionConfig, *,
                    normalize: Normalizer, rng: torch.Generator,
                    amp: bool = False) -> dict[str, float]:
    """Train ``generator`` for ``config.steps`` steps against the frozen ``classifier``.

    Args:
        generator: Trained in place (train mode: dropout on).
        classifier: Left unchanged; the steps run its eval-mode
            :func:`~netinv.inference.inference_copy` (batch norm folded, no weight gradients).
        config: Loss weights, steps, batch size, learning rate.
        normalize: Maps pixel-space images [0, 1] to the classifier's input space.
        rng: Random source for labels, z and conditioning (on the model's device).
        amp: Run forward passes under bf16 autocast where it pays
            (:func:`~netinv.inference.autocast`).

    Returns:
        Mean of each unweighted term and of the total over the last quarter of the steps:
        ``{"loss", "kl", "ce", "cosine", "ortho"}``.

    Raises:
        NonFiniteLossError: The loss became NaN or inf.
    """
    frozen = inference_copy(classifier)
    device = next(generator.parameters()).device
    n_classes = generator.cond.n_classes
    generator.train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.5, 0.999),
                                 fused=True)
    tail_start = config.steps - max(1, config.steps // 4)
    sums = torch.zeros(1 + len(LOSS_TERMS), device=device)
    for step in track(range(config.steps), desc="invert", unit="step"):
        labels = torch.randint(0, n_classes, (config.batch_size,), device=device, generator=rng)
        with autocast(device, amp):
            images, target = generator.sample(labels, rng)  # B, C, H, W; B, n
            logits, feats = frozen(normalize(images), with_features=True)  # B, K; B, F
            total, terms = inversion_loss(config, target, logits, feats)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if step >= tail_start:
            sums += torch.stack([total.detach(), *terms.values()])
    means = (sums / (config.steps - tail_start)).tolist()  # the one host sync of the call
    if not all(math.isfinite(v) for v in means):
        raise NonFiniteLossError(f"inversion loss became non-finite: {means}")
    return dict(zip(("loss", *LOSS_TERMS), means))


@torch.no_grad()
def sample_images(generator: Generator, labels: Tensor, rng: torch.Generator, *,
                  batch_size: int = 1024) -> Tensor:
    """Images G(z, c) for ``labels`` (N,) in pixel space [0, 1], shape (N, C, H, W).

    Batch norm uses its running statistics, but dropout stays on: it is the generator's
    source of diversity (arXiv 2411.17777), and diverse garbage covers more of the OOD space.
    Sampled in chunks of ``batch_size``.
    """
    generator.eval()
    for module in generator.modules():
        if isinstance(module, torch.nn.Dropout2d):
            module.train()
    chunks = [generator.sample(part, rng)[0].float() for part in labels.split(batch_size)]
    return torch.cat(chunks)
