"""netinv.inference: device choice, ID normalisation, chunked logits equal one big batch."""

from __future__ import annotations

import pytest
import torch

from netinv.inference import Normalizer, autocast, predict_logits, resolve_device
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
