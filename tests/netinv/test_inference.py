"""netinv.inference: device choice, ID normalisation, chunked logits equal one big batch, the
CUDA memory figures (CUDA calls stubbed, so they run on CPU)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from netinv import inference
from netinv.inference import (
    Normalizer,
    amd_cpu_family,
    autocast,
    bf16_pays,
    cuda_memory,
    eval_batch_size,
    inference_copy,
    predict_logits,
    resolve_device,
    uses_bf16,
)
from netinv.models import Classifier, PlainClassifier
from tests.helpers.tiny import tiny_classifier


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="device='cuda'"):
            resolve_device("cuda")


def test_normalizer_takes_uint8_and_float_pixels_alike() -> None:
    normalize = Normalizer((0.5, 0.25, 0.0), (0.5, 0.25, 1.0), torch.device("cpu"))
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    out = normalize(pixels)
    assert out[:, :, 0, 0].tolist() == [[-1.0, -1.0, 0.0], [1.0, 3.0, 1.0]]
    assert torch.equal(normalize(pixels.float() / 255), out)


@pytest.mark.parametrize("amp", [False, True])
def test_predict_logits_in_chunks_equals_one_batch(amp: bool) -> None:
    classifier = tiny_classifier().eval()
    normalize = Normalizer((0.1307,), (0.3081,), torch.device("cpu"))
    images = torch.randint(0, 256, (10, 1, 28, 28), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    chunked = predict_logits(classifier, images, normalize=normalize, batch_size=3, amp=amp)
    with torch.no_grad(), autocast(torch.device("cpu"), amp):
        whole = classifier(normalize(images)).float()
    assert chunked.shape == (10, 11) and chunked.dtype == torch.float32
    tolerance = {"atol": 0.05, "rtol": 0.05} if amp else {}  # bf16; else float32's defaults
    torch.testing.assert_close(chunked, whole, **tolerance)
    # normalised float input is passed through as it is
    again = predict_logits(classifier, normalize(images), normalize=normalize, batch_size=4,
                           amp=amp)
    torch.testing.assert_close(again, chunked, **tolerance)


def test_eval_batch_size_is_the_given_one_else_by_device_and_body() -> None:
    cnn, cpu, cuda = tiny_classifier(), torch.device("cpu"), torch.device("cuda")
    resnet = Classifier((3, 32, 32), 10, 8, "resnet")
    assert eval_batch_size(7, resnet, cpu) == 7
    assert eval_batch_size(None, cnn, cpu) == 256
    assert eval_batch_size(None, resnet, cpu) == 32
    assert eval_batch_size(None, PlainClassifier((3, 32, 32), 10, 8, "resnet"), cpu) == 32
    assert eval_batch_size(None, torch.nn.Linear(2, 2), cpu) == 256  # no arch: the cnn's
    assert eval_batch_size(None, resnet, cuda) == eval_batch_size(None, cnn, cuda) == 1024


def test_predict_logits_by_device_batch_and_without_normalisation() -> None:
    classifier = tiny_classifier().eval()
    normalize = Normalizer((0.1307,), (0.3081,), torch.device("cpu"))
    images = torch.randint(0, 256, (600, 1, 28, 28), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)  # more than the cnn's CPU default of 256: 3 chunks
    by_device = predict_logits(classifier, images, normalize=normalize, batch_size=None,
                               amp=False)
    torch.testing.assert_close(by_device, predict_logits(classifier, images, normalize=normalize,
                                                         batch_size=600, amp=False))
    # float input is already normalised, so no Normalizer is needed; uint8 input needs one
    torch.testing.assert_close(predict_logits(classifier, normalize(images), normalize=None,
                                              batch_size=None, amp=False), by_device)
    with pytest.raises(ValueError, match="normalize=None"):
        predict_logits(classifier, images, normalize=None, batch_size=None, amp=False)


def test_inference_copy_folds_batch_norm_and_leaves_the_model_alone() -> None:
    classifier = tiny_classifier()
    classifier.train()
    for _ in range(3):  # move the running statistics away from (0, 1)
        classifier(torch.randn(16, 1, 28, 28) * 2 + 1)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    frozen = inference_copy(classifier)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert classifier.training and all(p.requires_grad for p in classifier.parameters())
    assert all(torch.equal(v, before[k]) for k, v in classifier.state_dict().items())
    images = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        expected = classifier.eval()(images)
        torch.testing.assert_close(frozen(images), expected, rtol=1e-5, atol=1e-5)


def test_input_gradients_through_the_inference_copy_match_the_model() -> None:
    classifier = tiny_classifier().eval()
    images = torch.randn(4, 1, 28, 28, requires_grad=True)
    (grad,) = torch.autograd.grad(classifier(images).sum(), images)
    copy_images = images.detach().clone().requires_grad_()
    (grad_copy,) = torch.autograd.grad(inference_copy(classifier)(copy_images).sum(),
                                       copy_images)
    torch.testing.assert_close(grad_copy, grad, rtol=1e-4, atol=1e-6)


def test_autocast_runs_bf16_only_where_it_pays() -> None:
    cpu = torch.device("cpu")
    with autocast(cpu, True):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (torch.bfloat16 if bf16_pays(cpu) else torch.float32)
    with autocast(cpu, False):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32
    assert bf16_pays(torch.device("cuda"))  # a device kind, not a check that one is present


def test_uses_bf16_needs_both_the_ask_and_the_hardware() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16(cuda, True) and not uses_bf16(cuda, False)
    assert uses_bf16(cpu, True) is bf16_pays(cpu) and not uses_bf16(cpu, False)


def _cpuinfo_block(index: int, vendor: str, family: str) -> str:
    """One processor's block of Linux's /proc/cpuinfo (tab before the colon, blank line after)."""
    return (f"processor\t: {index}\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
            "model\t\t: 2\nflags\t\t: fpu avx512f avx512_bf16\n\n")


@pytest.mark.parametrize("vendor, family, expected", [
    ("AuthenticAMD", "26", 26),  # Zen 5 (EPYC 9005): bf16 pays
    ("AuthenticAMD", "25", 25),  # Zen 3/4 (EPYC 9004): bf16 pays where AVX512-BF16 is
    ("GenuineIntel", "6", None),  # Intel: AMX decides, not the family
    ("AuthenticAMD", "unknown", None),
    ("AuthenticAMD", "\u00b2", None),  # a digit to str.isdigit, not to int()
])
def test_amd_cpu_family_reads_the_first_processor(vendor: str, family: str,
                                                  expected: int | None) -> None:
    other = _cpuinfo_block(1, "AuthenticAMD", "23")  # a different second block is not read
    assert amd_cpu_family(_cpuinfo_block(0, vendor, family) + other) == expected
    assert amd_cpu_family("\n" + _cpuinfo_block(0, vendor, family)) == expected
    assert amd_cpu_family("") is None


@pytest.mark.parametrize("amx, avx512_bf16, cpuinfo, expected", [
    (True, True, OSError, True),  # AMX: bf16, whatever the family
    (False, True, _cpuinfo_block(0, "AuthenticAMD", "26"), True),  # Zen 5
    (False, True, _cpuinfo_block(0, "AuthenticAMD", "25"), True),  # Zen 4
    (False, True, _cpuinfo_block(0, "AuthenticAMD", "23"), False),  # before Zen 3/4
    (False, True, _cpuinfo_block(0, "GenuineIntel", "6"), False),  # Intel without AMX
    (False, False, _cpuinfo_block(0, "AuthenticAMD", "26"), False),  # no AVX512-BF16
    (False, True, OSError, False),  # no /proc/cpuinfo: fp32
])
def test_bf16_pays_on_cpu_by_amx_or_amd_family(monkeypatch: pytest.MonkeyPatch, amx: bool,
                                               avx512_bf16: bool, cpuinfo: object,
                                               expected: bool) -> None:
    def read_text(path, *args, **kwargs) -> str:
        if cpuinfo is OSError:
            raise OSError(f"no {path}")
        return cpuinfo

    monkeypatch.setattr(torch.cpu, "get_capabilities",
                        lambda: {"amx_bf16": amx, "avx512_bf16": avx512_bf16})
    monkeypatch.setattr(inference.Path, "read_text", read_text)
    inference._cpu_bf16_pays.cache_clear()
    try:
        assert bf16_pays(torch.device("cpu")) is expected
    finally:
        inference._cpu_bf16_pays.cache_clear()  # the next caller reads this machine again


@pytest.mark.parametrize("gpus, cap_mib", [(0.25, 1024.0), (0.5, 2048.0), (1.0, 4096.0)])
def test_cuda_memory_reports_peak_and_the_fraction_cap(monkeypatch: pytest.MonkeyPatch,
                                                      gpus: float, cap_mib: float) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=4096 * 2**20))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device: 300 * 2**20)
    got = cuda_memory(torch.device("cuda", 0), gpus)
    assert got == {"peak_gpu_mem_mib": 300.0, "gpu_mem_cap_mib": cap_mib}
    assert cuda_memory(torch.device("cpu"), gpus) == {}
