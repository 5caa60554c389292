"""The (n+1)-class classifier, the label conditioning, and the conditional generator.

Each model is built from its config section (``Classifier.from_config``,
``Generator.from_config``) and describes itself with ``spec()``: a small JSON-able dict (class
name and constructor arguments) from which :func:`build_model` rebuilds it, so checkpoints and
exported detectors store what rebuilds the model instead of inferring it from tensor shapes.

Shapes in trailing comments use B (batch), C (channels), H, W (height, width), K = n + 1
(classes including garbage), Z (latent size), S = H // 4 (the generator's seed grid).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from netinv.config import CLASSIFIER_ARCHS, CONDITIONINGS, GENERATOR_ARCHS

if TYPE_CHECKING:
    from netinv.config import ClassifierConfig, InversionConfig

VECTOR_MARGIN = 2.0  # logit gap between the hidden label and the runner-up in vector conditioning
# largest image side (px) a model accepts: 16x the largest ID set's 32 px. Raw inputs are resized
# to the ID shape, so the bound also keeps a tampered detector file from asking for 10^10 pixels
MAX_SIDE = 512
MAX_CLASSES = 10_000  # K; far above any ID set (TinyImageNet has 200)
MAX_TTA_SHIFT = 4  # px; reflect padding needs less than the smallest side (8)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {name}={value!r}.")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must lie in [{low}, {high}], got {name}={value!r}.")


def check_shape(shape: Any, name: str = "shape") -> tuple[int, int, int]:
    """``shape`` as (C, H, W) ints with C in {1, 3} and 8 <= H, W <= MAX_SIDE.

    Raises:
        TypeError: Not a tuple or list of three ints.
        ValueError: Channels or sides out of range.
    """
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
        raise TypeError(f"`{name}` must be a (C, H, W) tuple or list of ints, got "
                        f"{name}={shape!r}.")
    channels, height, width = shape
    if channels not in (1, 3) or not (8 <= height <= MAX_SIDE and 8 <= width <= MAX_SIDE):
        raise ValueError(f"`{name}` must be (C, H, W) with C in {{1, 3}} and H, W in "
                         f"[8, {MAX_SIDE}], got {name}={tuple(shape)}.")
    return (channels, height, width)


class Classifier(nn.Module):
    """A CNN over K = n + 1 classes that exposes its penultimate features.

    The body is chosen by ``arch`` (``netinv.config.CLASSIFIER_ARCHS``):

    - ``cnn``: three stride-2 conv blocks (width w, 2w, 4w) with batch norm, global average
      pooling and a hidden layer (4w) whose output is the penultimate feature. Strided
      convolutions keep the FLOPs per image low (about 5 MFLOP at 32x32, w = 32): enough for
      MNIST and FashionMNIST.
    - ``resnet``: a ResNet-9 sized for 32x32 (Page's DAWNBench net, as in airbench): conv w,
      then stages of 2w, 4w, 8w channels, each a 3x3 conv, batch norm, ReLU and 2x max pool,
      with a residual pair of convs after the first and last stage; global max pooling gives
      the 8w penultimate feature. About 48 MFLOP per 32x32 image at w = 16, x4 per doubling.
    - ``resnet18``: torchvision's ResNet-18 with a 3x3 stride-1 stem and no stem pooling (the
      usual 32x32 adaptation; 512 features, 0.56 GFLOP per 32x32 image): for GPU users.
      ``width`` is not used (ResNet-18's widths are fixed).

    Args:
        in_shape: Input (C, H, W), C in {1, 3}, H and W in [8, MAX_SIDE].
        num_classes: K = n + 1 outputs, the last one being the garbage class; [2, MAX_CLASSES].
        width: Channels of the first block, 4..256.
        arch: The body, one of ``netinv.config.CLASSIFIER_ARCHS``.
        flip_tta: In eval mode, average the logits and features of each image and its mirror
            image (test-time augmentation for models trained with random flips; twice the
            cost of a forward pass). Training mode sees the images as given.
        tta_shift: In eval mode, also average the views translated by this many px up-left
            and down-right (reflect padding; with their mirror images under ``flip_tta``),
            weighted as one half against the untranslated views' half (airbench's
            test-time augmentation; 3x the cost of the untranslated views). 0..MAX_TTA_SHIFT,
            0 = off.

    Raises:
        TypeError, ValueError: An argument of the wrong type or out of range.
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int = 32,
                 arch: str = "cnn", flip_tta: bool = False, tta_shift: int = 0):
        super().__init__()
        self.in_shape = check_shape(in_shape, "in_shape")
        if not isinstance(flip_tta, bool):
            raise TypeError(f"`flip_tta` must be a bool, got flip_tta={flip_tta!r}.")
        self.flip_tta = flip_tta
        _check_int("tta_shift", tta_shift, 0, MAX_TTA_SHIFT)
        self.tta_shift = tta_shift
        _check_int("num_classes", num_classes, 2, MAX_CLASSES)
        _check_int("width", width, 4, 256)
        if arch not in CLASSIFIER_ARCHS:
            raise ValueError(f"`arch` must be one of {', '.join(CLASSIFIER_ARCHS)}, got "
                             f"arch={arch!r}.")
        channels = self.in_shape[0]
        self.num_classes = num_classes
        self.width = width
        self.arch = arch
        if arch == "cnn":
            blocks = []
            for c_in, c_out in ((channels, width), (width, 2 * width), (2 * width, 4 * width)):
                blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            self.body = nn.Sequential(*blocks, GlobalAvgPool())
            self.feature_dim = 4 * width
            self.hidden = nn.Sequential(nn.Linear(4 * width, self.feature_dim),
                                        nn.ReLU(inplace=True))
        elif arch == "resnet":
            self.body = nn.Sequential(
                *_conv_bn(channels, width),  # B, w, H, W
                *_conv_bn(width, 2 * width), nn.MaxPool2d(2),  # B, 2w, H/2, W/2
                Residual(2 * width),
                *_conv_bn(2 * width, 4 * width), nn.MaxPool2d(2),  # B, 4w, H/4, W/4
                *_conv_bn(4 * width, 8 * width), nn.MaxPool2d(2),  # B, 8w, H/8, W/8
                Residual(8 * width),
                nn.AdaptiveMaxPool2d(1), nn.Flatten())  # B, 8w
            self.feature_dim = 8 * width
            self.hidden = nn.Identity()
        else:
            self.body = _resnet18_body(channels)  # B, 512
            self.feature_dim = 512
            self.hidden = nn.Identity()
        self.head = nn.Linear(self.feature_dim, num_classes)
        # ResNet-9 scales its logits down (Page): max-pooled features are large, and label
        # smoothing with a high learning rate otherwise overshoots in the first steps
        self.logit_scale = 0.125 if arch == "resnet" else 1.0

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, shape: tuple[int, int, int],
                    num_classes: int) -> Classifier:
        """The classifier of a run: ID input ``shape`` (C, H, W), K = ``num_classes``."""
        return cls(shape, num_classes, cfg.width, cfg.arch, cfg.flip, cfg.tta_shift)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this model with :func:`build_model` (JSON-able)."""
        return _spec(self, in_shape=list(self.in_shape), num_classes=self.num_classes,
                     width=self.width, arch=self.arch, flip_tta=self.flip_tta,
                     tta_shift=self.tta_shift)

    @property
    def tta_views(self) -> tuple[int, int]:
        """(untranslated, translated) views of each image that a forward pass in the current
        mode averages: (1, 0) in training mode or without test-time augmentation."""
        if self.training:
            return 1, 0
        untranslated = 2 if self.flip_tta else 1
        return untranslated, 2 * untranslated if self.tta_shift else 0

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features, (B, C, H, W) -> (B, F)."""
        return self.hidden(self.body(x))  # B, F

    def forward(self, x: Tensor, *, with_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, K); with ``with_features`` also the penultimate features (B, F).
        In eval mode, each the weighted mean over the test-time views (:func:`tta_mean`)."""
        untranslated, translated = self.tta_views
        passes = [x]  # B, C, H, W: one forward pass per entry
        if translated:
            s, (h, w) = self.tta_shift, x.shape[2:]
            padded = F.pad(x, (s, s, s, s), mode="reflect")  # B, C, H + 2s, W + 2s
            passes.append(torch.cat([padded[:, :, :h, :w], padded[:, :, 2 * s:, 2 * s:]]))
        if untranslated == 2:  # each pass with its mirror images
            passes = [torch.cat([p, p.flip(3)]) for p in passes]
        feats = (self.features(passes[0]) if len(passes) == 1
                 else torch.cat([self.features(p) for p in passes]))  # V B, F
        logits = self.head(feats) * self.logit_scale  # V B, K
        if untranslated + translated > 1:
            logits = tta_mean(logits, x.shape[0], (untranslated, translated))  # B, K
            feats = tta_mean(feats, x.shape[0], (untranslated, translated))  # B, F
        return (logits, feats) if with_features else logits


def tta_mean(rows: Tensor, batch: int, views: tuple[int, int]) -> Tensor:
    """Combine the rows of ``batch`` images seen in ``views`` = (untranslated, translated) test-time
    views, (V B, ...) with the views outermost, into (B, ...): the mean of the untranslated
    views, or with translated views the mean of the two views' means (airbench's weighting)."""
    untranslated, translated = views
    per_view = rows.view(untranslated + translated, batch, *rows.shape[1:])  # V, B, ...
    mean = per_view[:untranslated].mean(0)  # B, ...
    if translated:
        mean = 0.5 * mean + 0.5 * per_view[untranslated:].mean(0)
    return mean


class GlobalAvgPool(nn.Module):
    """The mean over height and width, (B, C, H, W) -> (B, C).

    Written as a sum times 1 / (H W) rather than ``AdaptiveAvgPool2d(1)`` + ``Flatten``: on
    CPU the latter's backward hands the ReLU before it a gradient layout that makes that
    ReLU's backward about 4x slower (fwd + bwd of ReLU and pooling at 32x64x4x4: 130 against
    550 us), about 10% of a small classifier's training step. Same values up to rounding.
    """

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C)."""
        return x.sum((2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 conv (same size), batch norm, ReLU: (B, c_in, H, W) -> (B, c_out, H, W)."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class Residual(nn.Module):
    """x + two conv-bn-ReLU layers of x, at ``channels`` channels and the same size."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(*_conv_bn(channels, channels), *_conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x + self.layers(x)


def _resnet18_body(channels: int) -> nn.Module:
    """torchvision's ResNet-18 up to its pooled 512 features, stem adapted to 32x32 inputs."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=1)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()  # (B, 512) after its global average pooling
    return net


class PlainClassifier(nn.Module):
    """A plain n-class :class:`Classifier` shown to the pipeline as K = n + 1 outputs, for the
    MSP/energy baselines: its garbage logit is a constant ``GARBAGE_LOGIT``, so the softmax, the
    cross-entropy, ``msp`` and ``energy`` are exactly those of the n-class model (garbage is
    never predicted and has no parameters; ``ue`` and ``ue_tiered`` still count K = n + 1).

    Args:
        in_shape: Input (C, H, W), as :class:`Classifier`.
        n_classes: n, the ID classes, >= 2.
        width, arch, flip_tta, tta_shift: As :class:`Classifier`.
    """

    GARBAGE_LOGIT = -1e4  # exp() underflows to exactly 0 in float32 and bf16, unlike -inf no NaN

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int = 32,
                 arch: str = "cnn", flip_tta: bool = False, tta_shift: int = 0):
        super().__init__()
        self.inner = Classifier(in_shape, n_classes, width, arch, flip_tta, tta_shift)
        self.in_shape = self.inner.in_shape
        self.num_classes = n_classes + 1

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, shape: tuple[int, int, int],
                    n_classes: int) -> PlainClassifier:
        """The plain baseline of a run: ID input ``shape`` (C, H, W), n = ``n_classes``."""
        return cls(shape, n_classes, cfg.width, cfg.arch, cfg.flip, cfg.tta_shift)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this model with :func:`build_model` (JSON-able)."""
        return _spec(self, in_shape=list(self.in_shape), n_classes=self.num_classes - 1,
                     width=self.inner.width, arch=self.inner.arch,
                     flip_tta=self.inner.flip_tta, tta_shift=self.inner.tta_shift)

    @property
    def arch(self) -> str:
        """The inner classifier's body, as :attr:`Classifier.arch`."""
        return self.inner.arch

    @property
    def tta_views(self) -> tuple[int, int]:
        """As :attr:`Classifier.tta_views`."""
        return self.inner.tta_views

    def forward(self, x: Tensor, *, with_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, n + 1), the last one constant; with ``with_features`` also the inner
        classifier's penultimate features (B, F)."""
        logits, feats = self.inner(x, with_features=True)  # B, n; B, F
        garbage = logits.new_full((logits.shape[0], 1), self.GARBAGE_LOGIT)
        logits = torch.cat([logits, garbage], dim=1)
        return (logits, feats) if with_features else logits


class Conditioning(nn.Module):
    """Draws hidden label encodings: the soft target P and the generator's conditioning inputs.

    Kinds (design.md, arXiv 2411.17777):

    - ``label``: P is the one-hot label; the generator sees it as a vector.
    - ``vector``: P is the softmax of a random vector whose argmax is the label; the generator
      sees P.
    - ``matrix``: an S x S matrix of random values in which the cells of the label's group
      (cell index mod n == label) are raised; the generator sees it as an extra channel at its
      seed grid. P is the one-hot label.
    - ``vector+matrix``: both; P is the vector's softmax.

    Args:
        kind: One of ``netinv.config.CONDITIONINGS``.
        n_classes: n, the number of ID classes (the garbage class is never a target).
        grid: S, the generator's seed grid side.
    """

    def __init__(self, kind: str, n_classes: int, grid: int):
        super().__init__()
        if kind not in CONDITIONINGS:
            raise ValueError(f"`conditioning` must be one of {', '.join(CONDITIONINGS)}, got "
                             f"conditioning={kind!r}.")
        self.kind = kind
        self.n_classes = n_classes
        self.grid = grid
        self.uses_vector = kind in ("label", "vector", "vector+matrix")
        self.uses_matrix = kind in ("matrix", "vector+matrix")
        cell_class = torch.arange(grid * grid) % n_classes
        self.register_buffer("cell_class", cell_class.view(grid, grid), persistent=False)

    def sample(self, labels: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Hide ``labels`` (B,): (P (B, n), vector (B, n) or None, matrix (B, 1, S, S) or None)."""
        batch, n, device = labels.shape[0], self.n_classes, labels.device
        one_hot = F.one_hot(labels, n).float()  # B, n
        if self.kind in ("vector", "vector+matrix"):
            raw = torch.randn(batch, n, device=device, generator=generator)  # B, n
            # lift the label's entry VECTOR_MARGIN above the row maximum, so argmax P = label
            # with a margin the generator can read (a 0.5 margin left inversion at ~50% agreement)
            gap = raw.max(dim=1).values - raw.gather(1, labels[:, None]).squeeze(1)  # B
            lift = gap + VECTOR_MARGIN
            soft = (raw + one_hot * lift[:, None]).softmax(dim=1)  # B, n
        else:
            soft = one_hot
        vector = soft if self.uses_vector else None
        matrix = None
        if self.uses_matrix:
            cells = torch.rand(batch, self.grid, self.grid, device=device, generator=generator)
            is_label = self.cell_class[None] == labels[:, None, None]  # B, S, S
            matrix = (cells + is_label.float()).unsqueeze(1) / 2.0  # B, 1, S, S in [0, 1)
        return soft, vector, matrix


class Generator(nn.Module):
    """Conditional generator G(z, c) -> image in pixel space [0, 1].

    A linear layer maps [z, vector] to a (4w, S, S) seed grid (S = H / 4); the matrix channel,
    when used, is concatenated there; two 2x up-sampling blocks with dropout reach H x W; a
    3x3 conv and a sigmoid give C channels in [0, 1]. The up-sampling blocks are, by ``arch``:

    - ``transposed``: 4x4 stride-2 transposed convolutions. Each output pixel sees 2x2 of the 4x4
      taps, a different 2x2 for even and odd positions, so they leave checkerboard artefacts
      unless the taps happen to balance (Odena et al., Distill 2016).
    - ``upsample``: nearest-neighbour 2x up-sampling then a 3x3 convolution; every interior
      output pixel sees the same taps, so a constant input stays constant (no checkerboard).

    Args:
        out_shape: Image (C, H, W) as :class:`Classifier`'s ``in_shape``; square, H divisible
            by 4.
        n_classes: n, the ID classes, [1, MAX_CLASSES).
        latent_dim: Z, 1..1024.
        width: Channels of the last up-convolution, 4..256.
        conditioning: One of ``netinv.config.CONDITIONINGS``.
        dropout: Dropout probability after each up-convolution, [0, 1).
        arch: The up-sampling body, one of ``netinv.config.GENERATOR_ARCHS``.

    Raises:
        TypeError, ValueError: An argument of the wrong type or out of range.
    """

    def __init__(self, out_shape: tuple[int, int, int], n_classes: int, latent_dim: int = 64,
                 width: int = 32, conditioning: str = "vector", dropout: float = 0.5,
                 arch: str = "transposed"):
        super().__init__()
        channels, height, width_px = check_shape(out_shape, "out_shape")
        if height % 4 != 0 or height != width_px:
            raise ValueError(f"`out_shape` must be square with H divisible by 4, got "
                             f"out_shape={tuple(out_shape)}.")
        _check_int("n_classes", n_classes, 1, MAX_CLASSES - 1)
        _check_int("latent_dim", latent_dim, 1, 1024)
        _check_int("width", width, 4, 256)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise TypeError(f"`dropout` must be a float, got dropout={dropout!r}.")
        if not 0 <= dropout < 1:  # also refuses NaN
            raise ValueError(f"`dropout` must lie in [0, 1), got dropout={dropout!r}.")
        if arch not in GENERATOR_ARCHS:
            raise ValueError(f"`arch` must be one of {', '.join(GENERATOR_ARCHS)}, got "
                             f"arch={arch!r}.")
        self.arch = arch
        self.out_shape = (channels, height, width_px)
        self.n_classes = n_classes
        self.latent_dim = latent_dim
        self.width = width
        self.dropout = float(dropout)
        self.grid = height // 4
        self.cond = Conditioning(conditioning, n_classes, self.grid)
        vec_dim = n_classes if self.cond.uses_vector else 0
        mat_ch = 1 if self.cond.uses_matrix else 0
        self.seed = nn.Sequential(nn.Linear(latent_dim + vec_dim, 4 * width * self.grid ** 2),
                                  nn.ReLU(inplace=True))
        self.seed_channels = 4 * width
        self.up = nn.Sequential(
            *_up_block(arch, 4 * width + mat_ch, 2 * width, dropout),  # B, 2w, 2S, 2S
            *_up_block(arch, 2 * width, width, dropout),  # B, w, H, W
            nn.Conv2d(width, channels, 3, padding=1),
        )

    @classmethod
    def from_config(cls, cfg: InversionConfig, shape: tuple[int, int, int],
                    n_classes: int) -> Generator:
        """The generator of a run: ID image ``shape`` (C, H, W), n = ``n_classes``."""
        return cls(shape, n_classes, cfg.latent_dim, cfg.width, cfg.conditioning, cfg.dropout,
                   cfg.arch)

    def spec(self) -> dict[str, Any]:
        """What rebuilds this model with :func:`build_model` (JSON-able)."""
        return _spec(self, out_shape=list(self.out_shape), n_classes=self.n_classes,
                     latent_dim=self.latent_dim, width=self.width,
                     conditioning=self.cond.kind, dropout=self.dropout, arch=self.arch)

    def forward(self, z: Tensor, vector: Tensor | None, matrix: Tensor | None) -> Tensor:
        """Images (B, C, H, W) in [0, 1] from z (B, Z) and the conditioning inputs."""
        inputs = z if vector is None else torch.cat([z, vector], dim=1)  # B, Z (+ n)
        x = self.seed(inputs).view(-1, self.seed_channels, self.grid, self.grid)  # B, 4w, S, S
        if matrix is not None:
            x = torch.cat([x, matrix.to(x.dtype)], dim=1)  # B, 4w + 1, S, S
        return torch.sigmoid(self.up(x))  # B, C, H, W

    def sample(self, labels: Tensor, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        """Draw z and a conditioning for ``labels`` (B,); return (images (B, C, H, W), P (B, n)).
        """
        z = torch.randn(labels.shape[0], self.latent_dim, device=labels.device,
                        generator=generator)  # B, Z
        soft, vector, matrix = self.cond.sample(labels, generator)
        return self(z, vector, matrix), soft

    def sample_pairs(self, labels: Tensor, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Two images per conditioning, for mode seeking: one conditioning per label in
        ``labels`` (B,), each used with two independent z's.

        Returns:
            (images (2B, C, H, W), P (2B, n), z (2B, Z)); rows i and B + i share the
            conditioning.
        """
        batch = labels.shape[0]
        z = torch.randn(2 * batch, self.latent_dim, device=labels.device,
                        generator=generator)  # 2B, Z
        soft, vector, matrix = self.cond.sample(labels, generator)
        twice = [None if t is None else torch.cat([t, t]) for t in (soft, vector, matrix)]
        return self(z, twice[1], twice[2]), twice[0], z


def _up_block(arch: str, c_in: int, c_out: int, dropout: float) -> list[nn.Module]:
    """One 2x up-sampling block of the generator: (B, c_in, S, S) -> (B, c_out, 2S, 2S)."""
    if arch == "transposed":
        up = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
    else:
        up = [nn.Upsample(scale_factor=2, mode="nearest"),
              nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    return [*up, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.Dropout2d(dropout)]


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- specs

MODELS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (Classifier, PlainClassifier, Generator)}


# constructor arguments added after specs were first stored; their defaults keep the old model
ADDED_ARGS = frozenset({"arch", "flip_tta", "tta_shift"})


def _spec(model: nn.Module, **args: Any) -> dict[str, Any]:
    return {"class": type(model).__name__, "args": args}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) model from a ``spec()`` dict; load its weights afterwards.

    Args:
        spec: ``{"class": name in MODELS, "args": {constructor argument: value}}``, as written
            by a model's ``spec()``; every constructor argument must be given, except those of
            ADDED_ARGS (their defaults rebuild the models of older specs).

    Raises:
        TypeError: ``spec`` or its ``args`` is not a dict, or an argument has the wrong type.
        ValueError: Unknown class, missing or unknown arguments, or a value out of range.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("args"), dict):
        raise TypeError(f"a model spec must be a dict with a dict 'args', got spec={spec!r}.")
    name = spec.get("class")
    if name not in MODELS or set(spec) != {"class", "args"}:
        raise ValueError(f"a model spec must be {{'class': one of {', '.join(MODELS)}, "
                         f"'args': ...}}, got spec keys={sorted(spec)}, class={name!r}.")
    cls = MODELS[name]
    params = list(inspect.signature(cls).parameters)
    args = spec["args"]
    missing = set(params) - set(args)
    if missing and missing <= ADDED_ARGS:  # a spec written before the argument existed
        params = [p for p in params if p not in missing]
    if sorted(args) != sorted(params):
        raise ValueError(f"a {name} spec's args must be exactly {', '.join(params)}, got "
                         f"args={sorted(args)}.")
    return cls(**args)
