"""The (n+1)-class classifier, the label conditioning, and the conditional generator.

Shapes in trailing comments use B (batch), C (channels), H, W (height, width), K = n + 1
(classes including garbage), Z (latent size), S = H // 4 (the generator's seed grid).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

VECTOR_MARGIN = 2.0  # logit gap between the hidden label and the runner-up in vector conditioning


class Classifier(nn.Module):
    """A small strided CNN over K = n + 1 classes that exposes its penultimate features.

    Three stride-2 conv blocks (width w, 2w, 4w) with batch norm, global average pooling, and a
    hidden layer whose output is the penultimate feature used by the inversion losses. Strided
    convolutions (no pooling) keep the FLOPs per image low: trials per GPU-hour is the product.

    Args:
        in_shape: Input (C, H, W), H and W >= 8.
        num_classes: K = n + 1 outputs, the last one being the garbage class.
        width: Channels of the first block, 4..256.
    """

    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int = 32):
        super().__init__()
        channels = in_shape[0]
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        blocks = []
        for c_in, c_out in ((channels, width), (width, 2 * width), (2 * width, 4 * width)):
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*blocks)
        self.feature_dim = 4 * width
        self.hidden = nn.Sequential(nn.Linear(4 * width, self.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features, (B, C, H, W) -> (B, F)."""
        x = self.body(x)  # B, 4w, H/8, W/8
        x = x.mean(dim=(2, 3))  # B, 4w
        return self.hidden(x)  # B, F

    def forward(self, x: Tensor, *, with_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, K); with ``with_features`` also the penultimate features (B, F)."""
        feats = self.features(x)
        logits = self.head(feats)  # B, K
        return (logits, feats) if with_features else logits


class PlainClassifier(nn.Module):
    """A plain n-class :class:`Classifier` shown to the pipeline as K = n + 1 outputs, for the
    MSP/energy baselines: its garbage logit is a constant ``GARBAGE_LOGIT``, so the softmax, the
    cross-entropy, ``msp`` and ``energy`` are exactly those of the n-class model (garbage is
    never predicted and has no parameters; ``ue`` and ``ue_tiered`` still count K = n + 1).

    Args:
        in_shape: Input (C, H, W).
        n_classes: n, the ID classes.
        width: As :class:`Classifier`.
    """

    GARBAGE_LOGIT = -1e4  # exp() underflows to exactly 0 in float32 and bf16, unlike -inf no NaN

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, width: int = 32):
        super().__init__()
        self.inner = Classifier(in_shape, n_classes, width)
        self.in_shape = self.inner.in_shape
        self.num_classes = n_classes + 1

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, n + 1), the last one constant."""
        logits = self.inner(x)  # B, n
        garbage = logits.new_full((logits.shape[0], 1), self.GARBAGE_LOGIT)
        return torch.cat([logits, garbage], dim=1)


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
    when used, is concatenated there; two stride-2 up-convolutions with dropout reach H x W; a
    3x3 conv and a sigmoid give C channels in [0, 1].

    Args:
        out_shape: Image (C, H, W); H and W divisible by 4.
        n_classes: n, the ID classes.
        latent_dim: Z, 1..1024.
        width: Channels of the last up-convolution, 4..256.
        conditioning: One of ``netinv.config.CONDITIONINGS``.
        dropout: Dropout probability after each up-convolution, [0, 1).
    """

    def __init__(self, out_shape: tuple[int, int, int], n_classes: int, latent_dim: int = 64,
                 width: int = 32, conditioning: str = "vector", dropout: float = 0.5):
        super().__init__()
        channels, height, width_px = out_shape
        assert height % 4 == 0 and width_px % 4 == 0, f"H, W must be divisible by 4: {out_shape}"
        assert height == width_px, f"square images only: {out_shape}"
        self.out_shape = tuple(out_shape)
        self.latent_dim = latent_dim
        self.grid = height // 4
        self.cond = Conditioning(conditioning, n_classes, self.grid)
        vec_dim = n_classes if self.cond.uses_vector else 0
        mat_ch = 1 if self.cond.uses_matrix else 0
        self.seed = nn.Sequential(nn.Linear(latent_dim + vec_dim, 4 * width * self.grid ** 2),
                                  nn.ReLU(inplace=True))
        self.seed_channels = 4 * width
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * width + mat_ch, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(width, channels, 3, padding=1),
        )

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


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
