"""The iterative network-inversion pipeline: train -> evaluate, then R rounds of
invert -> exclude -> train -> evaluate.

Round 0 trains the (n+1)-class classifier on the ID data plus a garbage class of Gaussian noise
and evaluates it (the noise-only baseline). Each round r = 1..R then inverts the current
classifier with a conditional generator, sends the generator's images to the garbage class,
retrains the classifier with class weights re-derived from the grown pool, and evaluates it.
Every round yields one record (a plain dict whose keys are the Parquet column names) and a
:class:`RoundState` from which the run can be resumed bit for bit on the same machine.

    from netinv import Config, run_rounds
    result = run_rounds(Config.from_flat({"rounds/count": 2}))
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from netinv.config import Config, GarbageConfig
from netinv.data import PreparedData, prepare
from netinv.inversion import NonFiniteLossError, autocast, sample_images, train_generator
from netinv.metrics import ood_metrics
from netinv.models import Classifier, Generator, PlainClassifier
from netinv.scores import SCORES, score_all, ue

log = logging.getLogger(__name__)

GRID_PER_CLASS = 8  # inverted images per class kept for the round's picture
SPLITS = ("val", "test")
RESUMABLE_CHANGES = ("rounds/count", "rounds/device", "data/root")  # may differ on resume


# ----------------------------------------------------------------------------- state


@dataclass
class RoundState:
    """Everything needed to resume after a finished round; saved with ``torch.save``.

    Only tensors, numbers, strings, lists and dicts, so ``torch.load(weights_only=True)``
    reads it back.
    """

    round: int  # rounds finished; 0 = the noise-only baseline
    config: dict[str, Any]  # Config.to_flat() of the run
    classifier: dict[str, Tensor]
    generator: dict[str, Tensor] | None  # None before round 1
    garbage_pool: Tensor  # (G, C, H, W) float32 in the classifier's (normalised) input space
    records: list[dict[str, Any]] = field(default_factory=list)  # one per finished round
    grid: Tensor | None = None  # (n * GRID_PER_CLASS, C, H, W) uint8, this round's inversions
    test_scores: dict[str, dict[str, Tensor]] | None = None  # "id"/OOD name -> score -> (N,)
    shape: list[int] = field(default_factory=list)  # ID input (C, H, W)
    mean: list[float] = field(default_factory=list)  # ID train per-channel mean, pixels in [0, 1]
    std: list[float] = field(default_factory=list)  # ID train per-channel std
    classes: list[str] = field(default_factory=list)  # the n ID class names

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(dataclasses.asdict(self), tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RoundState:
        """Read a state written by :meth:`save` (safe: ``weights_only=True``)."""
        return cls(**torch.load(path, map_location="cpu", weights_only=True))


@dataclass
class RunResult:
    """What :func:`run_rounds` returns: all records (round 0 first) and the final state."""

    records: list[dict[str, Any]]
    state: RoundState
    classifier: Classifier
    data: PreparedData


# ----------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`rounds/device` asks for CUDA but none is available, "
                         f"got device={name!r}.")
    return device


class Normalizer:
    """Pixel space [0, 1] (or uint8 [0, 255]) -> ID-standardised classifier input."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)  # 1, C, 1, 1
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return (images - self.mean) / self.std


NOISE_STREAM = -1  # round_seed index of the initial noise, apart from every round's stream


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


def train_classifier(classifier: Classifier, id_images: Tensor, id_labels: Tensor,
                     garbage_pool: Tensor, config: Config, *, normalize: Normalizer,
                     rng: torch.Generator) -> float:
    """Train ``classifier`` in place on ID images plus the garbage pool (label K - 1).

    Args:
        id_images: uint8 (N, C, H, W) on the model's device.
        id_labels: int64 (N,) in [0, n).
        garbage_pool: float (G, C, H, W), already normalised.

    Returns:
        Mean weighted cross-entropy over the last epoch.

    Raises:
        NonFiniteLossError: The loss became NaN or inf.
    """
    cfg = config.classifier
    device = id_images.device
    garbage_label = classifier.num_classes - 1
    n_id, n_pool = len(id_images), len(garbage_pool)
    weights = class_weights(id_labels, n_pool, classifier.num_classes).to(device)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil((n_id + n_pool) / cfg.batch_size)
    background = normalize(torch.zeros((1, id_images.shape[1], 1, 1), device=device)).flatten()
    # one-cycle schedule per round: short warm-up, then anneal to ~0; a round's one or two
    # epochs reach the accuracy that a constant rate needs several epochs for
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    classifier.train()
    for _ in range(cfg.epochs):
        loss_sum = torch.zeros((), device=device)
        order = torch.randperm(n_id + n_pool, generator=rng, device=device)
        steps = order.split(cfg.batch_size)
        for idx in steps:
            from_id = idx < n_id
            images = torch.empty((len(idx), *id_images.shape[1:]), device=device)  # B, C, H, W
            images[from_id] = normalize(id_images[idx[from_id]])
            images[~from_id] = garbage_pool[idx[~from_id] - n_id]
            labels = torch.where(from_id, id_labels[idx.clamp_max(n_id - 1)], garbage_label)
            if cfg.shift > 0:  # ID and garbage alike, so a shifted border is no class cue
                images = random_shift(images, cfg.shift, background, rng)
            with autocast(device, config.rounds.amp):
                logits = classifier(images)  # B, K
            loss = F.cross_entropy(logits.float(), labels, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach()
    mean_loss = (loss_sum / len(steps)).item()
    if not torch.isfinite(torch.tensor(mean_loss)):
        raise NonFiniteLossError(f"classifier loss became non-finite: {mean_loss}")
    return mean_loss


@torch.no_grad()
def predict_logits(classifier: Classifier, images: Tensor, *, normalize: Normalizer,
                   batch_size: int, amp: bool) -> Tensor:
    """Logits (N, K) float32 for uint8 or normalised float images (N, C, H, W), in chunks."""
    classifier.eval()
    device = next(classifier.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        chunk = chunk.to(device, non_blocking=True)
        x = normalize(chunk) if chunk.dtype == torch.uint8 else chunk
        with autocast(device, amp):
            out.append(classifier(x).float())
    return torch.cat(out)


def evaluate(classifier: Classifier, sets: dict[str, Tensor], id_labels: dict[str, Tensor],
             config: Config, *, normalize: Normalizer
             ) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """Score every evaluation set once and compute accuracy and OOD metrics.

    Args:
        sets: ``"id/val"``, ``"id/test"`` and ``"<ood>/<split>"`` -> uint8 images.
        id_labels: ``"val"``/``"test"`` -> ID labels.

    Returns:
        (record fields: ID accuracy and garbage share per split, and ``"ood"``, a list of rows
        {ood_set, split, score, auroc, aupr_in, aupr_out, fpr95, garbage_share};
        test scores: ``"id"``/OOD name -> score name -> (N,) float32 on CPU).
    """
    garbage = classifier.num_classes - 1
    scores: dict[str, dict[str, Tensor]] = {}
    shares: dict[str, float] = {}
    fields: dict[str, Any] = {}
    for key, images in sets.items():
        logits = predict_logits(classifier, images, normalize=normalize,
                                batch_size=config.rounds.eval_batch_size, amp=config.rounds.amp)
        prediction = logits.argmax(dim=1)
        shares[key] = (prediction == garbage).float().mean().item()
        scores[key] = {name: value.cpu() for name, value in score_all(logits).items()}
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
        for score in SCORES:
            metrics = ood_metrics(scores[f"id/{split}"][score], scores[key][score])
            rows.append({"ood_set": name, "split": split, "score": score, **metrics,
                         "garbage_share": shares[key]})
    fields["ood"] = rows
    test_scores = {key.split("/")[0]: value for key, value in scores.items()
                   if key.endswith("/test")}
    return fields, test_scores


def exclude(generator: Generator, classifier: Classifier, garbage_pool: Tensor, config: Config,
            *, normalize: Normalizer, rng: torch.Generator) -> tuple[Tensor, int]:
    """Sample inverted images for every class and add them to the garbage pool.

    Policy ``all`` adds every image; ``uncertain`` only those whose UE under the current
    classifier is >= ``garbage/ue_threshold`` (images it already calls garbage score UE ~ 0 and
    are not needed). The pool keeps its newest ``garbage/pool_cap`` images.

    Returns:
        (new pool, number of images added).
    """
    cfg = config.garbage
    n_classes = generator.cond.n_classes
    device = garbage_pool.device
    labels = torch.arange(config.inversion.samples_per_round, device=device) % n_classes
    candidates = normalize(sample_images(generator, labels, rng))  # N, C, H, W
    if cfg.policy == "uncertain":
        logits = predict_logits(classifier, candidates, normalize=normalize,
                                batch_size=config.rounds.eval_batch_size, amp=config.rounds.amp)
        candidates = candidates[ue(logits) >= cfg.ue_threshold]
    pool = torch.cat([garbage_pool, candidates])
    if cfg.pool_cap is not None:
        pool = pool[-cfg.pool_cap:]
    return pool, len(candidates)


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
                   seed=config.rounds.seed, train_limit=dc.train_limit, test_limit=dc.test_limit)


def _snapshot(model: torch.nn.Module) -> dict[str, Tensor]:
    """A CPU copy of the model's state; on CPU ``.cpu()`` alone would alias the live weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def check_resumable(config: Config, state: RoundState) -> None:
    """A state resumes only a run that differs at most in where it runs and how many rounds.

    Raises:
        ValueError: naming every other key whose value differs from the saved one.
    """
    flat = config.to_flat()
    changed = [key for key, value in state.config.items()
               if key not in RESUMABLE_CHANGES and flat.get(key) != value]
    if changed:
        diffs = ", ".join(f"{k}: saved={state.config[k]!r} now={flat.get(k)!r}" for k in changed)
        raise ValueError(f"cannot resume: the state was saved by a different config ({diffs}).")


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
               on_round: Callable[[dict[str, Any], RoundState], None] | None = None
               ) -> RunResult:
    """Run the whole pipeline: round 0 (noise-only garbage), then rounds 1..R.

    Args:
        config: The run.
        data: Prepared datasets (e.g. shared between trials); None = ``prepare`` them from
            ``config.data``.
        state: A state saved after a finished round; the run continues with the next round.
        on_round: Called after every round with its record and the state to save.

    Returns:
        A :class:`RunResult` with every round's record (those of ``state`` included).

    Raises:
        NonFiniteLossError: A loss became NaN or inf.
        netinv.data.DataUnavailableError: A dataset is missing.
    """
    device = resolve_device(config.rounds.device)
    if state is not None:
        check_resumable(config, state)
    if data is None:
        data = prepare_data(config)
    shape, n, amp = data.shape, data.n_classes, config.rounds.amp
    normalize = Normalizer(data.mean, data.std, device)
    train_x, train_y, eval_sets, eval_labels = _on_device(data, device)

    # the first weights come from the run's seed, not from whatever ran before in this process
    torch.manual_seed(round_seed(config.rounds.seed, 0))
    classifier = Classifier(shape, n + 1, config.classifier.width).to(device)
    generator = Generator(shape, n, config.inversion.latent_dim, config.inversion.width,
                          config.inversion.conditioning, config.inversion.dropout).to(device)
    if state is None:
        rng = torch.Generator(device).manual_seed(round_seed(config.rounds.seed, NOISE_STREAM))
        garbage_pool = garbage_noise(config.garbage.noise_count, config.garbage, shape,
                                     normalize, rng)
        records: list[dict[str, Any]] = []
        first = 0
    else:
        classifier.load_state_dict(state.classifier)
        if state.generator is not None:
            generator.load_state_dict(state.generator)
        garbage_pool = state.garbage_pool.to(device)
        records = list(state.records)
        first = state.round + 1

    for r in range(first, config.rounds.count + 1):
        t_round = time.perf_counter()
        seed = round_seed(config.rounds.seed, r)
        torch.manual_seed(seed)  # dropout and weight init draw from the global generator
        rng = torch.Generator(device).manual_seed(seed)
        record: dict[str, Any] = {"round": r}
        grid = None

        # invert the current classifier and send the inversions to the garbage class
        t0 = time.perf_counter()
        added = 0
        inversion = dict.fromkeys(("loss", "kl", "ce", "cosine", "ortho"))
        if r > 0:
            if not config.inversion.warm_start:
                generator = Generator(shape, n, config.inversion.latent_dim,
                                      config.inversion.width, config.inversion.conditioning,
                                      config.inversion.dropout).to(device)
            inversion = train_generator(generator, classifier, config.inversion,
                                        normalize=normalize, rng=rng, amp=amp)
        record["time_invert_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if r > 0:
            garbage_pool, added = exclude(generator, classifier, garbage_pool, config,
                                          normalize=normalize, rng=rng)
            grid = inversion_grid(generator, rng)
        record["time_exclude_s"] = time.perf_counter() - t0
        record.update({f"inversion_{k}": v for k, v in inversion.items()})
        record["garbage_added"] = added
        record["garbage_size"] = len(garbage_pool)

        # train the classifier on ID + garbage with re-derived class weights
        t0 = time.perf_counter()
        if config.classifier.reinit and r > 0:
            classifier = Classifier(shape, n + 1, config.classifier.width).to(device)
        record["classifier_loss"] = train_classifier(
            classifier, train_x, train_y, garbage_pool, config, normalize=normalize, rng=rng)
        record["time_train_s"] = time.perf_counter() - t0

        # evaluate: ID accuracy, every score on every OOD set and split
        t0 = time.perf_counter()
        fields, test_scores = evaluate(classifier, eval_sets, eval_labels, config,
                                       normalize=normalize)
        record["time_eval_s"] = time.perf_counter() - t0
        record["time_round_s"] = time.perf_counter() - t_round
        record.update(fields)
        records.append(record)
        log.info("round %d: id_test_accuracy=%.4f garbage=%d (%.1fs)", r,
                 record["id_test_accuracy"], record["garbage_size"], record["time_round_s"])

        state = RoundState(
            round=r, config=config.to_flat(),
            classifier=_snapshot(classifier),
            generator=None if r == 0 else _snapshot(generator),
            garbage_pool=garbage_pool.cpu(), records=list(records), grid=grid,
            test_scores=test_scores, shape=list(shape), mean=list(data.mean),
            std=list(data.std), classes=list(data.classes))
        if on_round is not None:
            on_round(record, state)

    if state is None or state.round != config.rounds.count:
        raise ValueError(f"nothing to run: the state has {state.round if state else 0} rounds, "
                         f"config asks for rounds/count={config.rounds.count}.")
    return RunResult(records=records, state=state, classifier=classifier, data=data)


def run_plain(config: Config, *, data: PreparedData | None = None
              ) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """The plain n-class baseline: round 0's classifier, data, seed, training and evaluation,
    but no garbage class at all (:class:`~netinv.models.PlainClassifier`; no noise, no
    inversion), for the MSP and energy scores.

    Returns:
        (a round-0 record as ``run_rounds`` writes it, test scores as in :class:`RoundState`).
    """
    device = resolve_device(config.rounds.device)
    if data is None:
        data = prepare_data(config)
    normalize = Normalizer(data.mean, data.std, device)
    train_x, train_y, eval_sets, eval_labels = _on_device(data, device)
    torch.manual_seed(round_seed(config.rounds.seed, 0))
    classifier = PlainClassifier(data.shape, data.n_classes, config.classifier.width).to(device)
    rng = torch.Generator(device).manual_seed(round_seed(config.rounds.seed, 0))
    t0 = time.perf_counter()
    empty_pool = torch.empty((0, *data.shape), device=device)
    record: dict[str, Any] = {"round": 0, "garbage_added": 0, "garbage_size": 0}
    record["classifier_loss"] = train_classifier(classifier, train_x, train_y, empty_pool,
                                                 config, normalize=normalize, rng=rng)
    record["time_train_s"] = time.perf_counter() - t0
    fields, test_scores = evaluate(classifier, eval_sets, eval_labels, config,
                                   normalize=normalize)
    record["time_round_s"] = time.perf_counter() - t0
    record.update(fields)
    return record, test_scores


def json_safe(value: Any) -> Any:
    """A record with NaN/inf replaced by None, so JSON files of records stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def mean_metric(record: dict[str, Any], *, score: str, metric: str, split: str) -> float:
    """Mean of ``metric`` for ``score`` over the record's OOD sets on ``split`` (val or test)."""
    values = [row[metric] for row in record["ood"]
              if row["score"] == score and row["split"] == split]
    if not values:
        raise ValueError(f"no OOD rows for score={score!r}, split={split!r} in the record.")
    return sum(values) / len(values)
