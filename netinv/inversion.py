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
orthogonality). Optional priors, each off at weight 0 (config fields of the same name), make
the inversions natural and varied rather than one adversarial texture per class:

.. math::

    + w_{fs} R_{feature} + w_{tv} R_{TV} + w_{\\ell_2} R_{\\ell_2} + w_{div} R_{div}

(:func:`feature_stats_loss`, :func:`tv_loss`, :func:`l2_loss`, :func:`mode_seeking_loss`).
Each term is a pure function below; :func:`inversion_loss` sums them once.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from netinv.config import InversionConfig
from netinv.inference import Normalizer, autocast, inference_copy
from netinv.models import Classifier, Generator
from netinv.optim import FusedOptimizer
from netinv.progress import track

LOSS_TERMS = ("kl", "ce", "cosine", "ortho")
PRIOR_TERMS = ("feature_stats", "tv", "l2", "diversity")  # weights: InversionConfig fields
MODE_SEEKING_EPS = 1e-5  # MSGAN's eps in d_z / (d_x + eps)
ID_STATS_IMAGES = 4096  # ID train images behind feature_stats_target="id"
GENERATOR_BETA1 = 0.5  # Adam's beta1 for the generator (beta2 0.999), as GAN generators use

Stats = list[tuple[Tensor, Tensor]]  # per BatchNorm layer: (mean (C,), var (C,)) of its input


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


def batch_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of ``x`` (B, C, H, W) over B, H, W; float32 (C,)."""
    x = x.float()
    return x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)


def feature_stats_loss(stats: Stats, target: Stats) -> Tensor:
    """DeepInversion's feature regulariser (Yin et al., CVPR 2020, arXiv 1912.08795, eq. 4):

    .. math:: R_{feature} = \\sum_l \\| \\mu_l(x) - \\mu_l^* \\|_2
                            + \\| \\sigma^2_l(x) - \\sigma^{2*}_l \\|_2

    Args:
        stats: Per BatchNorm layer l, the (mean, variance) of that layer's input over the batch,
            each (C_l,) (:func:`batch_stats`, collected by :func:`bn_input_stats`).
        target: The same per layer: the running statistics or those of ID images
            (:func:`bn_targets`).

    Returns:
        Scalar >= 0; 0 when every layer's batch statistics equal the target.
    """
    if len(stats) != len(target):
        raise ValueError(f"`stats` and `target` must have one entry per BatchNorm layer, got "
                         f"len(stats)={len(stats)}, len(target)={len(target)}.")
    layers = [torch.linalg.vector_norm(mean - t_mean) + torch.linalg.vector_norm(var - t_var)
              for (mean, var), (t_mean, t_var) in zip(stats, target)]
    return torch.stack(layers).sum() if layers else torch.zeros(())


def tv_loss(images: Tensor) -> Tensor:
    """Anisotropic l1 total variation: mean |vertical neighbour difference| + mean |horizontal
    neighbour difference| (DeepInversion's R_TV, l1 form; the image prior of Mahendran and
    Vedaldi, CVPR 2015).

    Args:
        images: (B, C, H, W) in pixel space [0, 1].

    Returns:
        Scalar in [0, 2]: 0 for a constant image, 2 for a one-pixel 0/1 checkerboard.
    """
    x = images.float()
    return ((x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
            + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean())


def l2_loss(inputs: Tensor) -> Tensor:
    """DeepInversion's R_l2 as a mean: the mean squared value of the classifier's input
    (normalised units, so 0 is the ID mean pixel). Scalar >= 0."""
    return inputs.float().pow(2).mean()


def mode_seeking_loss(images: Tensor, z: Tensor) -> Tensor:
    """Mode seeking (MSGAN, Mao et al., CVPR 2019, eq. 3) as a loss, in pixel space:

    .. math:: R_{div} = \\frac{\\overline{|z_1 - z_2|}}{\\overline{|G(c, z_1) - G(c, z_2)|}
                                                      + \\epsilon}

    over pairs sharing the conditioning c (rows i and B + i, as
    :meth:`~netinv.models.Generator.sample_pairs` draws them), bars = means over pairs and
    elements, epsilon = MODE_SEEKING_EPS. Pixels rather than classifier features: a generator
    that ignores z has to change what the image looks like, and a feature distance can be met
    by a small adversarial change the eye (and the next classifier) does not see.

    Args:
        images: (2B, C, H, W) in pixel space [0, 1].
        z: (2B, Z) the latents behind them.

    Returns:
        Scalar > 0; smaller when the paired images differ more.
    """
    half = images.shape[0] // 2
    d_x = (images[:half].float() - images[half:2 * half].float()).abs().mean()
    d_z = (z[:half] - z[half:2 * half]).abs().mean()
    return d_z / (d_x + MODE_SEEKING_EPS)


def inversion_loss(config: InversionConfig, target: Tensor, logits: Tensor, features: Tensor,
                   *, images: Tensor | None = None, inputs: Tensor | None = None,
                   z: Tensor | None = None, stats: Stats | None = None,
                   stats_target: Stats | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted inversion loss and its unweighted terms.

    The priors are computed only when their weight is > 0, and need: ``images`` (pixels) for
    tv and diversity, ``inputs`` (normalised) for l2, ``z`` for diversity (pairs as in
    :func:`mode_seeking_loss`), ``stats`` and ``stats_target`` for feature_stats.

    Returns:
        (total scalar, {"kl", "ce", "cosine", "ortho", and each prior with weight > 0} ->
        scalar tensors, detached).
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
    priors = {
        "feature_stats": lambda: feature_stats_loss(stats, stats_target),
        "tv": lambda: tv_loss(images),
        "l2": lambda: l2_loss(inputs),
        "diversity": lambda: mode_seeking_loss(images, z),
    }
    for name, term in priors.items():
        weight = getattr(config, name)
        if weight > 0:
            terms[name] = term()
            total = total + weight * terms[name]
    return total, {name: value.detach() for name, value in terms.items()}


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def bn_input_stats(model: nn.Module) -> Iterator[Stats]:
    """Collect the batch statistics of every BatchNorm layer's input while the block runs.

    Registers a forward pre-hook on each BatchNorm layer of ``model``; each forward pass
    appends one (mean, var) per layer (:func:`batch_stats`) to the yielded list, in layer
    order; clear it between passes. The hooks are removed on exit, whatever happens.
    """
    stats: Stats = []
    handles = [bn.register_forward_pre_hook(lambda _, args: stats.append(batch_stats(args[0])))
               for bn in _batch_norms(model)]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def bn_targets(classifier: Classifier, kind: str, *, id_images: Tensor | None = None,
               normalize: Normalizer | None = None, batch_size: int = 1024,
               amp: bool = False) -> Stats:
    """The per-BatchNorm-layer (mean, var) the feature-statistics prior matches.

    Args:
        classifier: The frozen classifier (put in eval mode).
        kind: ``"running"``: each layer's running statistics (which also average over the
            garbage images it was trained on); ``"id"``: the statistics of each layer's input
            over ``id_images`` alone, pooled over all of them.
        id_images: uint8 ID images (N, C, H, W); needed for ``"id"``.
        normalize: The ID normalisation; needed for ``"id"``.
        batch_size: Images per forward pass for ``"id"``.
        amp: Forward passes under bf16 autocast.

    Returns:
        One (mean (C_l,), var (C_l,)) float32 pair per BatchNorm layer, in layer order.
    """
    if kind == "running":
        return [(bn.running_mean.float().clone(), bn.running_var.float().clone())
                for bn in _batch_norms(classifier)]
    if kind != "id" or id_images is None or normalize is None:
        raise ValueError(f"`kind` must be 'running', or 'id' with id_images and normalize, got "
                         f"kind={kind!r}, id_images given={id_images is not None}.")
    classifier.eval()
    device = next(classifier.parameters()).device
    sums: list[list[Tensor]] | None = None  # per layer: [sum of means * n, sum of E[x^2] * n]
    count = 0
    # one pass per chunk: the translated test-time views would be a second pass (the images and
    # their mirror images under flip averaging are one, as the statistics have always been)
    shift, classifier.tta_shift = classifier.tta_shift, 0
    try:
        with bn_input_stats(classifier) as stats:
            for chunk in id_images.split(batch_size):
                stats.clear()
                with autocast(device, amp):
                    classifier(normalize(chunk.to(device)))
                n = len(chunk)
                moments = [[m * n, (v + m.pow(2)) * n] for m, v in stats]
                sums = moments if sums is None else [[a + c, b + d] for (a, b), (c, d)
                                                     in zip(sums, moments)]
                count += n
    finally:
        classifier.tta_shift = shift
    assert sums is not None, "id_images must not be empty"
    return [(s1 / count, s2 / count - (s1 / count).pow(2)) for s1, s2 in sums]


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the run cannot continue with these settings."""


def train_generator(generator: Generator, classifier: Classifier, config: InversionConfig, *,
                    normalize: Normalizer, rng: torch.Generator, amp: bool = False,
                    stats_target: Stats | None = None) -> dict[str, float]:
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
        stats_target: The feature-statistics prior's target (:func:`bn_targets`); None = the
            classifier's running statistics. Unused when ``config.feature_stats`` is 0.

    Returns:
        Mean of each unweighted term and of the total over the last quarter of the steps:
        ``{"loss", "kl", "ce", "cosine", "ortho"}`` and each prior of weight > 0
        (``"feature_stats"``, ``"tv"``, ``"l2"``, ``"diversity"``).

    Raises:
        NonFiniteLossError: The loss became NaN or inf.
    """
    # the feature-statistics prior hooks each batch norm's input: keep them unfolded for it
    frozen = inference_copy(classifier, fold_batch_norm=config.feature_stats == 0)
    # the generator is fit to the classifier as it sees one image, not to its test-time
    # average: the mirror and translated views would multiply every step's cost
    frozen.flip_tta, frozen.tta_shift = False, 0
    if config.feature_stats > 0 and stats_target is None:
        stats_target = bn_targets(classifier, "running")
    device = next(generator.parameters()).device
    n_classes = generator.cond.n_classes
    generator.train()
    optimizer = FusedOptimizer(generator.parameters(), "adam")
    tail_start = config.steps - max(1, config.steps // 4)
    names = [*LOSS_TERMS, *(name for name in PRIOR_TERMS if getattr(config, name) > 0)]
    sums = torch.zeros(1 + len(names), device=device)
    pairs = config.diversity > 0  # mode seeking: half the labels, two z's each
    n_labels = config.batch_size // 2 if pairs else config.batch_size
    with bn_input_stats(frozen if config.feature_stats > 0 else nn.Identity()) as stats:
        for step in track(range(config.steps), desc="invert", unit="step"):
            labels = torch.randint(0, n_classes, (n_labels,), device=device, generator=rng)
            stats.clear()
            with autocast(device, amp):
                if pairs:
                    images, target, z = generator.sample_pairs(labels, rng)  # 2B, C, H, W
                else:
                    (images, target), z = generator.sample(labels, rng), None  # B, C, H, W
                inputs = normalize(images)
                logits, feats = frozen(inputs, with_features=True)  # B, K; B, F
                total, terms = inversion_loss(config, target, logits, feats, images=images,
                                              inputs=inputs, z=z, stats=stats,
                                              stats_target=stats_target)
            optimizer.zero_grad()
            total.backward()
            optimizer.step(config.lr, GENERATOR_BETA1)
            if step >= tail_start:
                sums += torch.stack([total.detach(), *terms.values()])
    means = (sums / (config.steps - tail_start)).tolist()  # the one host sync of the call
    if not all(math.isfinite(v) for v in means):
        raise NonFiniteLossError(f"inversion loss became non-finite: {means}")
    return dict(zip(("loss", *names), means))


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
