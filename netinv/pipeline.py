"""The iterative network-inversion pipeline: train -> evaluate, then R rounds of
invert -> exclude -> train -> evaluate.

Round 0 trains the (n+1)-class classifier on the ID data plus a garbage class of Gaussian noise
and evaluates it (the noise-only baseline). Each round r = 1..R then inverts the current
classifier with a conditional generator, sends the generator's images to the garbage class,
retrains the classifier with class weights re-derived from the grown pool, and evaluates it.
Every round yields one record (a plain dict with the keys of
:data:`netinv.records.RECORD_FIELDS`) and a :class:`~netinv.state.RoundState` from which the run
can be resumed bit for bit on the same machine.

    from netinv import Config, run_rounds
    result = run_rounds(Config.from_flat({"rounds/count": 2}))
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from netinv.config import ClassifierConfig, Config, GarbageConfig
from netinv.data import PreparedData, prepare
from netinv.detector import Detector
from netinv.inference import (
    CHANNELS_LAST,
    Normalizer,
    autocast,
    predict_outputs,
    resolve_device,
)
from netinv.inversion import (ID_STATS_IMAGES, LOSS_TERMS, PRIOR_TERMS, NonFiniteLossError,
                              bn_targets, sample_images, train_generator)
from netinv.inverted import INVERTED_MEASURES, logits_and_features, measure, select
from netinv.metrics import ood_metrics
from netinv.models import Classifier, Generator, PlainClassifier
from netinv.optim import DEFAULT_MOMENTUM, FusedOptimizer, one_cycle, triangular
from netinv.progress import track
from netinv.records import OOD_ROWS
from netinv.scores import FITTED_SCORES, score_all
from netinv.state import RoundState, check_resumable, snapshot

if TYPE_CHECKING:
    from netinv.round0_cache import Round0Cache

log = logging.getLogger(__name__)

GRID_PER_CLASS = 8  # inverted images per class kept for the round's picture
SPLITS = ("val", "test")
NOISE_STREAM = -1  # round_seed index of the initial noise, apart from every round's stream
ModelT = TypeVar("ModelT", bound=torch.nn.Module)


@dataclass
class RunResult:
    """What :func:`run_rounds` returns: all records (round 0 first) and the final state."""

    records: list[dict[str, Any]]
    state: RoundState
    classifier: Classifier
    data: PreparedData


@dataclass
class PlainResult:
    """What :func:`run_plain` returns: its round-0-style record, the test scores (as in
    :class:`RoundState`) and the trained plain classifier (e.g. for a feature-space score)."""

    record: dict[str, Any]
    test_scores: dict[str, dict[str, Tensor]]
    classifier: PlainClassifier


# ----------------------------------------------------------------------------- helpers


def place(model: ModelT, device: torch.device) -> ModelT:
    """``model`` on ``device`` with channels-last 4-D weights, so its convolutions take oneDNN's
    (and cuDNN's) channels-last kernels without a layout reorder per call."""
    return model.to(device=device, memory_format=CHANNELS_LAST)


def round_seed(seed: int, round_index: int) -> int:
    """The seed of one round: a round depends only on the state before it, the seed and r."""
    return seed * 1_000_003 + round_index


def garbage_noise(count: int, config: GarbageConfig, shape: tuple[int, int, int],
                  normalize: Normalizer, rng: torch.Generator) -> Tensor:
    """Gaussian-noise garbage images in the classifier's (normalised) input space.

    Each image is ``level + noise_std * N(0, 1)`` in normalised units, then clipped to the valid
    pixel range [0, 1] (as every real input is; unclipped noise lets the classifier learn "out of
    range = garbage", a cue no real OOD image has). ``level`` is the ID mean for
    ``noise_brightness="id"``, or for ``"uniform"`` a per-image, per-channel pixel level drawn
    from U(0, 1), so the garbage class covers bright and dark inputs alike. With
    ``noise_max_scale`` s > 1 the pool is split evenly over grain sizes 1, 2, 4, .. <= s px:
    noise drawn at 1/grain resolution and bilinearly upsampled (then re-standardised), i.e.
    smooth blobs as well as pixel noise, so inputs with large uniform regions are covered too.
    A ``noise_grey`` share of the images (chosen at random) repeat their first channel in every
    channel: per-channel noise is coloured almost everywhere, so without them greyscale inputs
    (e.g. digits and sketches against a colour ID set) would lie outside the garbage class.

    Returns:
        (count, C, H, W) float32, normalised.
    """
    device = normalize.mean.device
    channels, height, width = shape
    grains = [2 ** k for k in range(5) if 2 ** k <= config.noise_max_scale]
    chunks = []
    for grain, size in zip(grains, torch.arange(count).tensor_split(len(grains))):
        if len(size) == 0:  # fewer images than grains
            continue
        low = (len(size), channels, math.ceil(height / grain), math.ceil(width / grain))
        noise = torch.randn(low, generator=rng, device=device)
        if grain > 1:
            noise = F.interpolate(noise, size=(height, width), mode="bilinear")
            noise = noise / noise.std().clamp_min(1e-6)  # smoothing shrinks the std
        chunks.append(noise)
    noise = torch.cat(chunks) if chunks else torch.empty((0, *shape), device=device)
    pixels = noise * config.noise_std * normalize.std  # pixel units; B, C, H, W
    if config.noise_brightness == "uniform":
        pixels = pixels + torch.rand((count, channels, 1, 1), generator=rng, device=device)
    else:
        pixels = pixels + normalize.mean
    if config.noise_grey > 0 and channels > 1:  # drawn last: the other draws stay as they were
        grey = torch.rand(count, generator=rng, device=device) < config.noise_grey  # B
        pixels = torch.where(grey[:, None, None, None], pixels[:, :1].expand_as(pixels), pixels)
    return normalize(pixels.clamp(0.0, 1.0))


def random_shift(images: Tensor, max_shift: int, fill: Tensor, rng: torch.Generator) -> Tensor:
    """Translate each image (B, C, H, W) by its own random offset in [-max_shift, max_shift]
    px on both axes, filling the uncovered border with ``fill`` (C,), in one gather.

    Returns:
        (B, C, H, W), same dtype.
    """
    batch, channels, height, width = images.shape
    device = images.device
    padded = fill.to(images.dtype).view(1, channels, 1, 1).repeat(
        batch, 1, height + 2 * max_shift, width + 2 * max_shift)  # B, C, H + 2s, W + 2s
    padded[:, :, max_shift:max_shift + height, max_shift:max_shift + width] = images
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, batch, 1), generator=rng, device=device)
    rows = dy + torch.arange(height, device=device)  # B, H
    cols = dx + torch.arange(width, device=device)  # B, W
    index = torch.arange(batch, device=device)[:, None, None]
    crops = padded[index, :, rows[:, :, None], cols[:, None, :]]  # B, H, W, C
    return crops.permute(0, 3, 1, 2)


def class_weights(id_labels: Tensor, garbage_count: int, num_classes: int) -> Tensor:
    """Inverse-frequency class weights over K classes, ``N / (K * count_k)``; shape (K,).

    A class with no images gets weight 0 (it never appears as a target).
    """
    counts = torch.bincount(id_labels, minlength=num_classes).double()
    counts[num_classes - 1] = garbage_count
    weights = counts.sum() / (num_classes * counts.clamp_min(1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


def make_optimizer(model: nn.Module, cfg: ClassifierConfig, total_steps: int, *,
                   lr: float | None = None) -> tuple[FusedOptimizer, list[tuple[float, float]]]:
    """The optimizer and per-step ``(lr, momentum)`` schedule of one round of ``total_steps``
    steps (``classifier/optimizer``, ``schedule``, ``warmup``, ``weight_decay``) peaking at
    ``lr`` (None = ``classifier/lr``)."""
    lr = cfg.lr if lr is None else lr
    optimizer = FusedOptimizer(model.parameters(), cfg.optimizer, weight_decay=cfg.weight_decay)
    if cfg.schedule == "onecycle":
        # short warm-up, then cosine anneal to ~0: one or two epochs reach the accuracy that a
        # constant rate needs several for
        return optimizer, one_cycle(lr, total_steps, max(cfg.warmup, 1e-3))
    if cfg.schedule == "linear":  # the fast-CIFAR-10 schedule: triangular, ends at 0
        return optimizer, triangular(lr, total_steps, cfg.warmup, DEFAULT_MOMENTUM)
    return optimizer, [(lr, DEFAULT_MOMENTUM)] * total_steps


def augment(images: Tensor, cfg: ClassifierConfig, background: Tensor, rng: torch.Generator
            ) -> Tensor:
    """``classifier/shift`` and ``flip`` applied to a normalised batch (B, C, H, W): ID and
    garbage alike, so neither a shifted border nor an orientation is a class cue."""
    if cfg.shift > 0:
        images = random_shift(images, cfg.shift, background, rng)
    if cfg.flip:
        flip = torch.rand(images.shape[0], generator=rng, device=images.device) < 0.5  # B
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    return images


def train_classifier(classifier: nn.Module, id_images: Tensor, id_labels: Tensor,
                     garbage_pool: Tensor, config: Config, *, normalize: Normalizer,
                     rng: torch.Generator, scratch: bool = False) -> float:
    """Train ``classifier`` in place on ID images plus the garbage pool (label K - 1).

    Args:
        id_images: uint8 (N, C, H, W) on the model's device.
        id_labels: int64 (N,) in [0, n).
        garbage_pool: float (G, C, H, W), already normalised.
        scratch: The classifier starts from scratch (round 0, reinit, the plain baseline):
            ``classifier/first_epochs`` and ``first_lr`` apply instead of ``epochs`` and ``lr``
            where set.

    Returns:
        Mean weighted cross-entropy over the last epoch.

    Raises:
        NonFiniteLossError: The loss became NaN or inf.
    """
    cfg = config.classifier
    epochs = cfg.first_epochs if scratch and cfg.first_epochs is not None else cfg.epochs
    lr = cfg.first_lr if scratch and cfg.first_lr is not None else cfg.lr
    device = id_images.device
    garbage_label = classifier.num_classes - 1
    n_id, n_pool = len(id_images), len(garbage_pool)
    weights = class_weights(id_labels, n_pool, classifier.num_classes).to(device)
    steps_per_epoch = math.ceil((n_id + n_pool) / cfg.batch_size)
    optimizer, schedule = make_optimizer(classifier, cfg, epochs * steps_per_epoch, lr=lr)
    rates = iter(schedule)
    background = normalize(torch.zeros((1, id_images.shape[1], 1, 1), device=device)).flatten()
    classifier.train()
    for _ in range(epochs):
        loss_sum = torch.zeros((), device=device)
        order = torch.randperm(n_id + n_pool, generator=rng, device=device)
        steps = order.split(cfg.batch_size)
        for idx in track(steps, desc="train", unit="batch"):
            # gather both sources at fixed shapes and pick per row: no boolean-mask indexing
            # (a host sync and a copy per source on CUDA), same values bit for bit
            from_id = idx < n_id  # B
            id_idx = idx.clamp_max(n_id - 1)
            images = normalize(id_images[id_idx])  # B, C, H, W
            if n_pool > 0:
                pool_rows = garbage_pool[(idx - n_id).clamp_min(0)]  # B, C, H, W
                images = torch.where(from_id[:, None, None, None], images, pool_rows)
            labels = torch.where(from_id, id_labels[id_idx], garbage_label)
            images = augment(images, cfg, background, rng)
            with autocast(device, config.rounds.amp):
                logits = classifier(images.contiguous(memory_format=CHANNELS_LAST))  # B, K
            loss = F.cross_entropy(logits.float(), labels, weight=weights,
                                   label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step(*next(rates))
            loss_sum += loss.detach()
    mean_loss = (loss_sum / len(steps)).item()
    if not torch.isfinite(torch.tensor(mean_loss)):
        raise NonFiniteLossError(f"classifier loss became non-finite: {mean_loss}")
    return mean_loss


def evaluate(classifier: Classifier, sets: dict[str, Tensor], id_labels: dict[str, Tensor],
             config: Config, *, normalize: Normalizer, id_train: Tensor | None = None
             ) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """Score every evaluation set once and compute accuracy and OOD metrics.

    Args:
        sets: ``"id/val"``, ``"id/test"`` and ``"<ood>/<split>"`` -> uint8 images.
        id_labels: ``"val"``/``"test"`` -> ID labels.
        id_train: uint8 ID training images: with ``rounds/fitted_scores`` the scores of
            :data:`netinv.scores.FITTED_SCORES` are fitted on them (:meth:`Detector.fit`,
            fused = energy + knn + layer_stats) and computed beside :data:`SCORES`, from the
            same forward passes; otherwise (or None) only :data:`SCORES`.

    Returns:
        (record fields: ID accuracy and garbage share per split, and ``"ood"``, a list of rows
        {ood_set, split, score, auroc, aupr_in, aupr_out, fpr95, garbage_share};
        test scores: ``"id"``/OOD name -> score name -> (N,) float32 on CPU).
    """
    garbage = classifier.num_classes - 1
    scores: dict[str, dict[str, Tensor]] = {}
    shares: dict[str, float] = {}
    fields: dict[str, Any] = {}
    fitted = (_fitted_detector(classifier, id_train, config, normalize)
              if config.rounds.fitted_scores and id_train is not None else None)
    for key, images in track(sets.items(), desc="evaluate", unit="set"):
        # on the images' device; only what the fitted scores need goes to the CPU, where
        # the detector keeps its fitted statistics
        out = predict_outputs(classifier, images, normalize=normalize,
                              batch_size=config.rounds.eval_batch_size, amp=config.rounds.amp,
                              features=fitted is not None, layer_means=fitted is not None)
        logits = out.logits
        extra = {} if fitted is None else fitted.scores_from(out.cpu(), FITTED_SCORES)
        prediction = logits.argmax(dim=1)
        shares[key] = (prediction == garbage).float().mean().item()
        scores[key] = {name: value.cpu() for name, value in {**score_all(logits),
                                                             **extra}.items()}
        name, split = key.split("/")
        if name == "id":
            accuracy = (prediction.cpu() == id_labels[split]).float().mean().item()
            fields[f"id_{split}_accuracy"] = accuracy
            fields[f"id_{split}_garbage_share"] = shares[key]
    rows = []
    for key in sets:
        name, split = key.split("/")
        if name == "id":
            continue
        for score in scores[key]:
            metrics = ood_metrics(scores[f"id/{split}"][score], scores[key][score])
            rows.append({"ood_set": name, "split": split, "score": score, **metrics,
                         "garbage_share": shares[key]})
    fields[OOD_ROWS] = rows
    test_scores = {key.split("/")[0]: value for key, value in scores.items()
                   if key.endswith("/test")}
    return fields, test_scores


def evaluate_classifier(classifier: nn.Module, config: Config, data: PreparedData
                        ) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """:func:`evaluate` of ``classifier`` on ``data``'s evaluation sets as a round of
    ``config`` evaluates it (its device, normalisation and fitted scores); moves the model."""
    device = resolve_device(config.rounds.device)
    train_x, _, eval_sets, eval_labels = _on_device(data, device)
    return evaluate(place(classifier, device), eval_sets, eval_labels, config,
                    normalize=Normalizer(data.mean, data.std, device), id_train=train_x)


def fit_scores(detector: Detector, fit_images: Tensor, config: Config) -> Detector:
    """``detector.fit`` as a run fits its fitted scores (``rounds/fitted_scores``): a
    ``rounds/seed`` draw of 10,000 + 2,000 of ``fit_images``, fused = energy + knn +
    layer_stats (from convolution ``rounds/layer_stats_first``); returns ``detector``."""
    return detector.fit(fit_images, seed=config.rounds.seed, fused_logit_score="energy",
                        layer_stats_first=config.rounds.layer_stats_first)


def run_detector(result: RunResult, score: str) -> Detector:
    """:func:`state_detector` of ``result``'s last round, with the run's own data."""
    return state_detector(result.state, score, data=result.data)


def state_detector(state: RoundState, score: str, *, data: PreparedData | None = None
                   ) -> Detector:
    """The detector of a round's state, reporting ``score``, on the CPU. With
    ``rounds/fitted_scores`` its fitted scores are fitted as that round's evaluation fitted
    them: the same images and draw, on the run's device (the same scores).

    Args:
        data: The run's prepared data; None = prepared from the state's config when the fit
            needs it.

    Raises:
        ValueError: A ``score`` the detector cannot compute (a fitted one of a run without
            ``rounds/fitted_scores``).
        netinv.data.DataUnavailableError: The fit needs the data and it is missing.
    """
    config = Config.from_flat(state.config)
    detector = Detector.from_state(state)
    if config.rounds.fitted_scores:
        data = prepare_data(config) if data is None else data
        try:
            device = resolve_device(config.rounds.device)
        except ValueError:  # a CUDA run read where there is none: the CPU, up to rounding
            device = torch.device("cpu")
        detector.to(device)
        fit_scores(detector, data.id_train.images, config)
        detector.to("cpu")
    detector.score_name = detector.check_score(score)
    return detector


def _fitted_detector(classifier: nn.Module, fit_images: Tensor, config: Config,
                     normalize: Normalizer) -> Detector:
    """A :class:`Detector` of ``classifier`` with :func:`fit_scores` fitted on
    ``fit_images``."""
    detector = Detector(classifier, shape=tuple(fit_images.shape[1:]),
                        mean=normalize.mean.flatten().tolist(),
                        std=normalize.std.flatten().tolist(),
                        classes=[str(c) for c in range(classifier.num_classes - 1)],
                        amp=config.rounds.amp, batch_size=config.rounds.eval_batch_size)
    return fit_scores(detector, fit_images, config)


def exclude(generator: Generator, classifier: Classifier, garbage_pool: Tensor, config: Config,
            *, normalize: Normalizer, rng: torch.Generator, id_val: Tensor
            ) -> tuple[Tensor, int, dict[str, float]]:
    """Sample inverted images for every class, measure them, and add those that
    ``garbage/policy`` selects (:func:`netinv.inverted.select`) to the garbage pool.

    The pool keeps its newest ``garbage/pool_cap`` images.

    Args:
        id_val: uint8 ID validation images, for the Fréchet distance.

    Returns:
        (new pool, number of images added, the samples' measures
        (:func:`netinv.inverted.measure`, on ``classifier``, before retraining)).
    """
    cfg = config.garbage
    n_classes = generator.cond.n_classes
    device = garbage_pool.device
    labels = torch.arange(config.inversion.samples_per_round, device=device) % n_classes
    pixels = sample_images(generator, labels, rng)  # N, C, H, W in [0, 1]
    candidates = normalize(pixels)
    batch, amp = config.rounds.eval_batch_size, config.rounds.amp
    logits, feats = logits_and_features(classifier, candidates, batch_size=batch, amp=amp)
    _, id_feats = logits_and_features(classifier, normalize(id_val), batch_size=batch, amp=amp)
    measures = measure(pixels, labels, feats, id_feats)
    if cfg.policy != "all":
        candidates = candidates[select(logits, cfg.policy, ue_threshold=cfg.ue_threshold,
                                       confidence_threshold=cfg.confidence_threshold)]
    pool = torch.cat([garbage_pool, candidates])
    if cfg.pool_cap is not None:
        pool = pool[-cfg.pool_cap:]
    return pool, len(candidates), measures


def inversion_grid(generator: Generator, rng: torch.Generator) -> Tensor:
    """GRID_PER_CLASS images per class, class-major, as uint8 (n * GRID_PER_CLASS, C, H, W)."""
    n_classes = generator.cond.n_classes
    device = next(generator.parameters()).device
    labels = torch.arange(n_classes, device=device).repeat_interleave(GRID_PER_CLASS)
    return (sample_images(generator, labels, rng) * 255).round().to(torch.uint8).cpu()


def prepare_data(config: Config) -> PreparedData:
    """The datasets of ``config`` (``netinv.data.prepare`` with its data settings and seed)."""
    dc = config.data
    return prepare(dc.id, dc.ood, root=dc.root, download=dc.download,
                   id_val_size=dc.id_val_size, ood_val_fraction=dc.ood_val_fraction,
                   seed=config.rounds.seed, train_limit=dc.train_limit, test_limit=dc.test_limit,
                   folder_test_fraction=dc.folder_test_fraction)


def _on_device(data: PreparedData, device: torch.device
               ) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """(train images, train labels, evaluation sets, ID eval labels) with the images on
    ``device``: decoded once, kept as uint8, normalised per batch."""
    eval_sets = {"id/val": data.id_val.images.to(device),
                 "id/test": data.id_test.images.to(device)}
    for name, splits in data.ood.items():
        for split in SPLITS:
            eval_sets[f"{name}/{split}"] = splits[split].to(device)
    eval_labels = {"val": data.id_val.labels, "test": data.id_test.labels}
    return (data.id_train.images.to(device), data.id_train.labels.to(device), eval_sets,
            eval_labels)


# ----------------------------------------------------------------------------- the loop


def run_rounds(config: Config, *, data: PreparedData | None = None,
               state: RoundState | None = None,
               on_round: Callable[[dict[str, Any], RoundState], None] | None = None,
               round0_cache: Round0Cache | None = None) -> RunResult:
    """Run the whole pipeline: round 0 (noise-only garbage), then rounds 1..R.

    Args:
        config: The run.
        data: Prepared datasets (e.g. shared between trials); None = ``prepare`` them from
            ``config.data``.
        state: A state saved after a finished round; the run continues with the next round.
        on_round: Called after every round with its record and the state to save.
        round0_cache: Where a fresh run (``state`` None) loads round 0 from, or stores it
            in (see :mod:`netinv.round0_cache`); None = always compute it.

    Returns:
        A :class:`RunResult` with every round's record (those of ``state`` included).

    Raises:
        ValueError: ``state`` is from another config or has more rounds than rounds/count.
        NonFiniteLossError: A loss became NaN or inf.
        netinv.data.DataUnavailableError: A dataset is missing.
    """
    device = resolve_device(config.rounds.device)
    if state is not None:
        check_resumable(config, state)
        if state.round > config.rounds.count:
            raise ValueError(f"nothing to run: the state has {state.round} rounds, config asks "
                             f"for rounds/count={config.rounds.count}.")
    if state is None and round0_cache is not None:  # it calls back here, with a state or not
        return round0_cache.run(config, data=data, on_round=on_round)
    if data is None:
        data = prepare_data(config)
    normalize = Normalizer(data.mean, data.std, device)
    train_x, train_y, eval_sets, eval_labels = _on_device(data, device)

    # start: fresh models and noise-only garbage, or the weights and pool of a finished round
    classifier, generator, garbage_pool = _start(config, data, state, normalize)
    records = [] if state is None else list(state.records)
    first = 0 if state is None else state.round + 1

    for r in range(first, config.rounds.count + 1):
        t_round = time.perf_counter()
        seed = round_seed(config.rounds.seed, r)
        torch.manual_seed(seed)  # dropout and weight init draw from the global generator
        rng = torch.Generator(device).manual_seed(seed)

        # invert the current classifier and send the inversions to the garbage class
        generator, garbage_pool, grid, record = _invert_and_exclude(
            r, generator, classifier, garbage_pool, config, normalize=normalize, rng=rng,
            id_train=train_x, id_val=eval_sets["id/val"])

        # train the classifier on ID + garbage with re-derived class weights
        t0 = time.perf_counter()
        if config.classifier.reinit and r > 0:
            classifier = place(Classifier.from_config(config.classifier, data.shape,
                                                      data.n_classes + 1), device)
        record["classifier_loss"] = train_classifier(
            classifier, train_x, train_y, garbage_pool, config, normalize=normalize, rng=rng,
            scratch=r == 0 or config.classifier.reinit)
        record["time_train_s"] = time.perf_counter() - t0

        # evaluate: ID accuracy, every score on every OOD set and split
        t0 = time.perf_counter()
        fields, test_scores = evaluate(classifier, eval_sets, eval_labels, config,
                                       normalize=normalize, id_train=train_x)
        record["time_eval_s"] = time.perf_counter() - t0
        record["time_round_s"] = time.perf_counter() - t_round
        record.update(fields)
        record["round0_cached"] = False if r == 0 else None  # a cache hit never gets here
        records.append(record)
        log.info("round %d: id_test_accuracy=%.4f garbage=%d (%.1fs)", r,
                 record["id_test_accuracy"], record["garbage_size"], record["time_round_s"])

        # the round's state: what resumes the run after it and exports its detector
        state = RoundState(
            round=r, config=config.to_flat(),
            classifier=snapshot(classifier), classifier_spec=classifier.spec(),
            generator=None if r == 0 else snapshot(generator),
            generator_spec=None if r == 0 else generator.spec(),
            garbage_pool=garbage_pool.cpu(), records=list(records), grid=grid,
            test_scores=test_scores, shape=list(data.shape), mean=list(data.mean),
            std=list(data.std), classes=list(data.classes))
        if on_round is not None:
            on_round(record, state)

    return RunResult(records=records, state=state, classifier=classifier, data=data)


def _start(config: Config, data: PreparedData, state: RoundState | None,
           normalize: Normalizer) -> tuple[Classifier, Generator, Tensor]:
    """(classifier, generator, garbage pool) before the first round to run: fresh models and
    ``garbage/noise_count`` noise images, or those of ``state``, on ``normalize``'s device."""
    device = normalize.mean.device
    # the first weights come from the run's seed, not from whatever ran before in this process
    torch.manual_seed(round_seed(config.rounds.seed, 0))
    classifier = Classifier.from_config(config.classifier, data.shape, data.n_classes + 1)
    generator = Generator.from_config(config.inversion, data.shape, data.n_classes)
    classifier, generator = place(classifier, device), place(generator, device)
    if state is None:
        rng = torch.Generator(device).manual_seed(round_seed(config.rounds.seed, NOISE_STREAM))
        pool = garbage_noise(config.garbage.noise_count, config.garbage, data.shape, normalize,
                             rng)
        return classifier, generator, pool
    classifier.load_state_dict(state.classifier)
    if state.generator is not None:
        generator.load_state_dict(state.generator)
    return classifier, generator, state.garbage_pool.to(device)


def _invert_and_exclude(r: int, generator: Generator, classifier: Classifier,
                        garbage_pool: Tensor, config: Config, *, normalize: Normalizer,
                        rng: torch.Generator, id_train: Tensor, id_val: Tensor
                        ) -> tuple[Generator, Tensor, Tensor | None, dict[str, Any]]:
    """Round r's inversion and exclusion (none in round 0, nor with ``garbage/policy`` none).

    Args:
        id_train: uint8 ID train images (the feature-statistics prior's ``"id"`` target).
        id_val: uint8 ID validation images (the Fréchet distance's reference).

    Returns:
        (the generator, the grown pool, the round's picture :func:`inversion_grid` or None,
        the round's record so far: round, inversion times, losses and measures, garbage counts).
    """
    t0 = time.perf_counter()
    losses = dict.fromkeys(("loss", *LOSS_TERMS, *PRIOR_TERMS))
    inverts = r > 0 and config.garbage.policy != "none"
    inv = config.inversion
    if inverts:
        if not inv.warm_start:
            device = normalize.mean.device
            generator = place(Generator.from_config(inv, generator.out_shape,
                                                    generator.n_classes), device)
        stats_target = None
        if inv.feature_stats > 0 and inv.feature_stats_target == "id":
            step = max(1, len(id_train) // ID_STATS_IMAGES)  # an even spread of the train set
            stats_target = bn_targets(classifier, "id", id_images=id_train[::step],
                                      normalize=normalize, amp=config.rounds.amp)
        losses.update(train_generator(generator, classifier, inv, normalize=normalize,
                                      rng=rng, amp=config.rounds.amp, stats_target=stats_target))
    record: dict[str, Any] = {"round": r, "time_invert_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    added, grid = 0, None
    measures = dict.fromkeys(INVERTED_MEASURES)
    if inverts:
        garbage_pool, added, measures = exclude(generator, classifier, garbage_pool, config,
                                                normalize=normalize, rng=rng, id_val=id_val)
        grid = inversion_grid(generator, rng)
    record["time_exclude_s"] = time.perf_counter() - t0
    record.update({f"inversion_{k}": v for k, v in losses.items()})
    record.update(measures)
    record["garbage_added"] = added
    record["garbage_size"] = len(garbage_pool)
    return generator, garbage_pool, grid, record


def run_plain(config: Config, *, data: PreparedData | None = None) -> PlainResult:
    """The plain n-class baseline: round 0's classifier, data, seed, training and evaluation,
    but no garbage class at all (:class:`~netinv.models.PlainClassifier`; no noise, no
    inversion), for the MSP and energy scores.

    Returns:
        A :class:`PlainResult`: a round-0 record as ``run_rounds`` writes it, the test scores
        and the classifier.
    """
    device = resolve_device(config.rounds.device)
    if data is None:
        data = prepare_data(config)
    normalize = Normalizer(data.mean, data.std, device)
    train_x, train_y, eval_sets, eval_labels = _on_device(data, device)
    torch.manual_seed(round_seed(config.rounds.seed, 0))
    classifier = place(PlainClassifier.from_config(config.classifier, data.shape,
                                                   data.n_classes), device)
    rng = torch.Generator(device).manual_seed(round_seed(config.rounds.seed, 0))
    t0 = time.perf_counter()
    empty_pool = torch.empty((0, *data.shape), device=device)
    record: dict[str, Any] = {"round": 0, "garbage_added": 0, "garbage_size": 0}
    record["classifier_loss"] = train_classifier(classifier, train_x, train_y, empty_pool,
                                                 config, normalize=normalize, rng=rng,
                                                 scratch=True)
    record["time_train_s"] = time.perf_counter() - t0
    fields, test_scores = evaluate(classifier, eval_sets, eval_labels, config,
                                   normalize=normalize, id_train=train_x)
    record["time_round_s"] = time.perf_counter() - t0
    record.update(fields)
    return PlainResult(record, test_scores, classifier)
