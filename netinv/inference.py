"""Running a trained classifier: the device, the ID normalisation, chunked logits, bf16 autocast.

Shared by the round loop (:mod:`netinv.pipeline`), the generator training
(:mod:`netinv.inversion`) and the deployable :class:`~netinv.detector.Detector`, so none of them
needs the others to score images.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``.

    Raises:
        ValueError: ``name`` asks for CUDA on a machine without it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`rounds/device` asks for CUDA but none is available, "
                         f"got device={name!r}.")
    return device


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled``, else a no-op context."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class Normalizer:
    """Pixel space [0, 1] (or uint8 [0, 255]) -> ID-standardised classifier input.

    Args:
        mean: Per-channel ID train mean, pixels in [0, 1]; length C.
        std: Per-channel ID train std, > 0; length C.
        device: Where the statistics live (that of the images to normalise).
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)  # 1, C, 1, 1
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: Tensor) -> Tensor:
        """(B, C, H, W) uint8 or float pixels -> (B, C, H, W) float, normalised."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return (images - self.mean) / self.std


@torch.no_grad()
def predict_logits(classifier: nn.Module, images: Tensor, *, normalize: Normalizer,
                   batch_size: int, amp: bool) -> Tensor:
    """Logits (N, K) float32 for uint8 or normalised float images (N, C, H, W), in chunks.

    Args:
        classifier: Put in eval mode; its parameters' device is where the chunks run.
        images: uint8 pixels (normalised here) or float images already normalised.
        normalize: The ID normalisation.
        batch_size: Images per forward pass, >= 1.
        amp: Forward passes under bf16 autocast.
    """
    classifier.eval()
    device = next(classifier.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        chunk = chunk.to(device, non_blocking=True)
        x = normalize(chunk) if chunk.dtype == torch.uint8 else chunk
        with autocast(device, amp):
            out.append(classifier(x).float())
    return torch.cat(out)
