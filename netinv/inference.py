"""Running a trained classifier: the device, the ID normalisation, chunked logits, bf16 autocast.

Shared by the round loop (:mod:`netinv.pipeline`), the generator training
(:mod:`netinv.inversion`) and the deployable :class:`~netinv.detector.Detector`, so none of them
needs the others to score images.

Speed on CPU (``docs/benchmarks.md``): models run channels-last; a frozen classifier runs as
:func:`inference_copy`, with each batch norm folded into the convolution before it; bf16 autocast
is used only where it pays (:func:`bf16_pays`): on CUDA, on CPUs with AMX and on AMD CPUs
from Zen 4 on. On Intel CPUs without AMX, oneDNN's AVX-512 bf16 convolutions were 1.5-2x slower
than fp32 for these small layers; on Zen 4 and Zen 5 they were up to 2x faster (the CIFAR-10
ResNet-9 trains 2.2-2.5x faster).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from netinv.layer_stats import ChannelMeans

CHANNELS_LAST = torch.channels_last  # the memory format of every model and image batch
# images per scoring forward pass when the config leaves it to the device and body
# (rounds/eval_batch_size None); measured on 2 CPU cores (docs/benchmarks.md): the small CNN
# scored fastest at 128-512 (per-chunk overhead below), the ResNet-9 at 16-32 with and without
# test-time views (1.5x faster than 2048: larger chunks' activations leave the caches); on CUDA
# large chunks keep the GPU busy. resnet18 is taken to behave like the ResNet-9 (not measured).
CPU_EVAL_BATCH_SIZE = {"cnn": 256, "resnet": 32, "resnet18": 32}
CUDA_EVAL_BATCH_SIZE = 1024


def eval_batch_size(batch_size: int | None, classifier: nn.Module, device: torch.device) -> int:
    """Images per scoring forward pass: ``batch_size`` when given, else on CPU
    :data:`CPU_EVAL_BATCH_SIZE` of the classifier's ``arch`` (``"cnn"`` when it has none),
    elsewhere :data:`CUDA_EVAL_BATCH_SIZE`."""
    if batch_size is not None:
        return batch_size
    if device.type != "cpu":
        return CUDA_EVAL_BATCH_SIZE
    return CPU_EVAL_BATCH_SIZE.get(getattr(classifier, "arch", "cnn"), CPU_EVAL_BATCH_SIZE["cnn"])


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


def cuda_memory(device: torch.device, gpus: float) -> dict[str, float]:
    """Peak CUDA memory of this process and its cap, in MiB; empty off CUDA.

    Args:
        device: The run's device.
        gpus: The process's GPU fraction, in (0, 1) when capped; 0 or >= 1 = the whole device.

    Returns:
        ``peak_gpu_mem_mib``: the most torch's caching allocator held (reserved: what
        ``torch.cuda.set_per_process_memory_fraction`` bounds; the CUDA context's few hundred
        MiB are outside it) since ``torch.cuda.reset_peak_memory_stats``, which a study trial
        calls when it starts; ``gpu_mem_cap_mib``: ``gpus`` times the device's memory.
    """
    if device.type != "cuda":
        return {}
    total = torch.cuda.get_device_properties(device).total_memory
    share = gpus if 0 < gpus < 1 else 1.0
    return {"peak_gpu_mem_mib": torch.cuda.max_memory_reserved(device) / 2**20,
            "gpu_mem_cap_mib": share * total / 2**20}


ZEN4_FAMILY = 0x19  # AMD's CPU family number of Zen 3 and Zen 4; Zen 4 brought AVX512-BF16


def amd_cpu_family(cpuinfo: str) -> int | None:
    """The CPU family of an AMD CPU from the text of Linux's ``/proc/cpuinfo`` (its first
    processor's ``cpu family`` line, decimal), or None for other vendors or other text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough: the others repeat it
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    family = fields.get("cpu family", "")
    if fields.get("vendor_id") != "AuthenticAMD" or not (family.isascii() and family.isdecimal()):
        return None
    return int(family)


@cache
def _cpu_bf16_pays() -> bool:
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("amx_bf16", False):
        return True
    if not capabilities.get("avx512_bf16", False):
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:  # not Linux: no vendor to tell AMD from the CPUs where bf16 is slower
        return False
    family = amd_cpu_family(cpuinfo)
    return family is not None and family >= ZEN4_FAMILY


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 autocast speeds these models up on ``device``: CUDA; a CPU with AMX-BF16
    matrix units; or an AMD CPU with AVX512-BF16 (Zen 4 and later): on EPYC Zen 4 and Zen 5
    the CIFAR-10 ResNet-9 trained 2.2-2.5x faster than in fp32, and the MNIST reference round
    ran 4-21% faster on Zen 5 and a median 6.5% faster on Zen 4 (mobile Zen 5 unmeasured).
    Elsewhere fp32: on Intel CPUs without AMX oneDNN's bf16 kernels were slower."""
    return device.type == "cuda" or (device.type == "cpu" and _cpu_bf16_pays())


def uses_bf16(device: torch.device, amp: bool) -> bool:
    """The precision in use: True when bf16 autocast is asked for (``amp``, as
    ``rounds/amp``) and :func:`bf16_pays` on ``device``, False for fp32."""
    return amp and bf16_pays(device)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when :func:`uses_bf16` (``enabled`` as ``rounds/amp``:
    "bf16 autocast where it pays"), else a no-op context."""
    if not uses_bf16(device, enabled):
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def inference_copy(model: nn.Module, *, fold_batch_norm: bool = True) -> nn.Module:
    """A frozen eval-mode copy of ``model`` for forward passes (and input gradients only):
    with ``fold_batch_norm``, every ``Conv2d`` directly followed by a ``BatchNorm2d`` in an
    ``nn.Sequential`` becomes one convolution with the batch norm's running statistics folded
    in; 4-D weights are channels-last. Outputs equal the model's in eval mode up to float
    rounding; ``model`` itself is left unchanged. Keep the batch norms (``False``) where a hook
    must see their inputs (the feature-statistics prior).
    """
    frozen = copy.deepcopy(model).eval()
    for module in frozen.modules():
        if not fold_batch_norm or not isinstance(module, nn.Sequential):
            continue
        children = list(module)
        for i, (first, second) in enumerate(zip(children, children[1:])):
            if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(first, second)
                module[i + 1] = nn.Identity()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen.to(memory_format=CHANNELS_LAST)


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


class Outputs(NamedTuple):
    """What :func:`predict_outputs` returns; a part not asked for is None."""

    logits: Tensor  # N, K float32
    features: Tensor | None  # N, F float32: penultimate features
    layer_means: list[Tensor] | None  # per convolution, N, C_l float32 channel means

    def cpu(self) -> Outputs:
        """The same outputs on the CPU."""
        return Outputs(self.logits.cpu(), None if self.features is None else self.features.cpu(),
                       None if self.layer_means is None else [m.cpu() for m in self.layer_means])


@torch.no_grad()
def predict_outputs(classifier: nn.Module, images: Tensor, *, normalize: Normalizer | None,
                    batch_size: int | None, amp: bool, features: bool = False,
                    layer_means: bool = False) -> Outputs:
    """Logits (N, K) float32 for uint8 or normalised float images (N, C, H, W), in chunks, and
    from the same forward passes the penultimate ``features`` (N, F) and the per-convolution
    channel means (``layer_means``, :class:`netinv.layer_stats.ChannelMeans`) when asked for.

    Args:
        classifier: Put in eval mode; its parameters' device is where the chunks run. Run as
            its :func:`inference_copy` (batch norm folded, channels-last).
        images: uint8 pixels (normalised here) or float images already normalised.
        normalize: The ID normalisation; None only for float images.
        batch_size: Images per forward pass, >= 1; None = by device (:func:`eval_batch_size`).
        amp: Forward passes under bf16 autocast where it pays (:func:`autocast`).
    """
    if images.dtype == torch.uint8 and normalize is None:  # before copying the model
        raise ValueError("uint8 images need `normalize`, got normalize=None.")
    classifier.eval()
    device = next(classifier.parameters()).device
    frozen = inference_copy(classifier)
    recorder = ChannelMeans(frozen) if layer_means else None
    logits, feats, means = [], [], []
    with recorder or nullcontext():
        for chunk in images.split(eval_batch_size(batch_size, classifier, device)):
            chunk = chunk.to(device, non_blocking=True)
            x = normalize(chunk) if chunk.dtype == torch.uint8 else chunk
            x = x.contiguous(memory_format=CHANNELS_LAST)
            with autocast(device, amp):
                out = frozen(x, with_features=True) if features else frozen(x)
            logits.append((out[0] if features else out).float())
            if features:
                feats.append(out[1].float())
            if recorder is not None:
                means.append(recorder.take(len(chunk)))
    return Outputs(torch.cat(logits), torch.cat(feats) if features else None,
                   [torch.cat(layer) for layer in zip(*means)] if layer_means else None)


def predict_logits(classifier: nn.Module, images: Tensor, *, normalize: Normalizer | None,
                   batch_size: int | None, amp: bool, with_features: bool = False
                   ) -> Tensor | tuple[Tensor, Tensor]:
    """Logits (N, K) of :func:`predict_outputs`; with ``with_features`` the pair (logits,
    features (N, F)) of the same passes."""
    out = predict_outputs(classifier, images, normalize=normalize, batch_size=batch_size,
                          amp=amp, features=with_features)
    return (out.logits, out.features) if with_features else out.logits
