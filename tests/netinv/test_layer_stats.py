"""netinv.layer_stats: channel means per convolution, their Gaussians, and the score."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netinv.inference import Normalizer, predict_outputs
from netinv.layer_stats import ChannelMeans, LayerGaussians, fit_layer_gaussians
from netinv.metrics import ood_metrics
from netinv.models import Classifier


def _classifier(flip_tta: bool = False) -> Classifier:
    torch.manual_seed(0)
    model = Classifier((3, 16, 16), 4, width=4, arch="resnet", flip_tta=flip_tta)
    for module in model.modules():  # running statistics far from the identity
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
    return model.eval()


def test_channel_means_are_the_conv_outputs_spatial_means() -> None:
    model = _classifier()
    x = torch.randn(5, 3, 16, 16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    expected = []
    handles = [c.register_forward_hook(lambda _m, _i, out: expected.append(out.mean((2, 3))))
               for c in convs]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    with ChannelMeans(model) as recorder, torch.no_grad():
        model(x)
        got = recorder.take(len(x))
    assert len(got) == len(convs) == 8  # the ResNet-9: every conv, in module order
    assert [g.shape for g in got] == [(5, c.out_channels) for c in convs]
    # the hook took the mean before the in-place ReLU overwrote the conv's output
    assert all(torch.allclose(g, e, atol=1e-6) for g, e in zip(got, expected))
    with torch.no_grad():
        model(x)  # outside the block: nothing is recorded
    assert all(not chunks for chunks in recorder._chunks)


def test_flip_averaging_gives_the_mean_of_image_and_mirror() -> None:
    x = torch.randn(4, 3, 16, 16)
    model = _classifier()
    with ChannelMeans(model) as rec, torch.no_grad():
        model(torch.cat([x, x.flip(3)]))
        both = rec.take(8)  # 8 images in, as given: no averaging
    tta = _classifier(flip_tta=True)
    with ChannelMeans(tta) as rec_tta, torch.no_grad():
        tta(x)
        averaged = rec_tta.take(4)
    assert all(torch.allclose(a, b.view(2, 4, -1).mean(0), atol=1e-6)
               for a, b in zip(averaged, both))


def test_translated_views_are_combined_as_the_model_combines_its_logits() -> None:
    x = torch.randn(3, 3, 16, 16)
    model = _classifier()
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    views = torch.cat([x, x.flip(3), padded[:, :, :16, :16], padded[:, :, 2:, 2:]])
    views = torch.cat([views[:6], views[6:], views[6:].flip(3)])  # image, mirror; 4 moved
    with ChannelMeans(model) as rec, torch.no_grad():
        model(views)
        each = rec.take(18)  # 18 images in, as given
    tta = _classifier(flip_tta=True)
    tta.tta_shift = 1
    with ChannelMeans(tta) as rec_tta, torch.no_grad():
        tta(x)
        combined = rec_tta.take(3)
        tta(x)
        with pytest.raises(ValueError, match="saw 18 images, expected batch=9 times 6"):
            rec_tta.take(9)
    for got, rows in zip(combined, each):
        per_view = rows.view(6, 3, -1)
        expected = 0.5 * per_view[:2].mean(0) + 0.5 * per_view[2:].mean(0)
        assert torch.allclose(got, expected, atol=1e-5)


def test_distances_are_mahalanobis_and_scales_are_held_out_medians() -> None:
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])
    bank = [torch.randn(4000, 3, generator=g) @ mix + 1.0, torch.randn(4000, 2, generator=g)]
    held = [torch.randn(500, 3, generator=g) @ mix + 1.0, torch.randn(500, 2, generator=g)]
    fit = fit_layer_gaussians(bank, held, shrinkage=1e-9)
    fit.check([3, 2])
    cov = torch.cov(bank[0].T.double(), correction=0)
    diff = (held[0] - bank[0].mean(0)).double()
    manual = ((diff @ torch.linalg.inv(cov)) * diff).sum(1)
    assert torch.allclose(fit.distances(held)[:, 0].double(), manual, rtol=1e-3)
    scaled = fit.distances(held) / fit.scales
    assert torch.allclose(scaled.median(0).values, torch.ones(2))
    # chi-square with C degrees of freedom on Gaussian data: mean distance ~ C
    assert fit.distances(bank).mean(0).tolist() == pytest.approx([3.0, 2.0], rel=0.05)


def test_a_shift_in_any_layer_raises_the_score() -> None:
    g = torch.Generator().manual_seed(1)
    bank = [torch.randn(2000, 8, generator=g), torch.randn(2000, 16, generator=g)]
    held = [torch.randn(500, 8, generator=g), torch.randn(500, 16, generator=g)]
    fit = fit_layer_gaussians(bank, held)
    test_id = [torch.randn(500, 8, generator=g), torch.randn(500, 16, generator=g)]
    shifted = [test_id[0], test_id[1] + 2.0]  # only the second layer moves
    assert ood_metrics(fit.score(test_id), fit.score(shifted))["auroc"] > 0.95


def test_folded_batch_norm_leaves_the_score_unchanged() -> None:
    # the detector hooks the folded copy (conv output = batch norm output), the model the
    # conv before its batch norm: a per-channel affine map, which Mahalanobis ignores
    model = _classifier()
    normalize = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    images = torch.randint(0, 256, (300, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    folded = predict_outputs(model, images, normalize=normalize, batch_size=64, amp=False,
                             layer_means=True).layer_means
    with ChannelMeans(model) as rec, torch.no_grad():
        model(normalize(images))
        unfolded = rec.take(len(images))
    assert not torch.allclose(folded[0], unfolded[0], atol=1e-2)  # different tensors...
    fits = [fit_layer_gaussians([m[:250] for m in means], [m[250:] for m in means],
                                shrinkage=1e-9) for means in (folded, unfolded)]
    a, b = (fit.score(means) for fit, means in zip(fits, (folded, unfolded)))
    assert torch.allclose(a, b, atol=1e-3)  # ...the same scores


def test_a_later_first_convolution_uses_only_the_layers_from_there() -> None:
    g = torch.Generator().manual_seed(3)
    bank = [torch.randn(2000, c, generator=g) for c in (4, 8, 16)]
    held = [torch.randn(500, c, generator=g) for c in (4, 8, 16)]
    fit = fit_layer_gaussians(bank, held, first=1)
    assert fit.first == 1 and [len(c) for c in fit.centers] == [8, 16]
    fit.check([4, 8, 16])  # widths are the classifier's, all of its convolutions
    alone = fit_layer_gaussians(bank[1:], held[1:])  # the same layers fitted on their own
    test_id = [torch.randn(300, c, generator=g) for c in (4, 8, 16)]
    assert torch.equal(fit.score(test_id), alone.score(test_id[1:]))
    # a shift in the skipped convolution changes nothing, one in a used one does
    moved_first = [test_id[0] + 5.0, *test_id[1:]]
    assert torch.equal(fit.score(moved_first), fit.score(test_id))
    moved_last = [*test_id[:2], test_id[2] + 2.0]
    assert ood_metrics(fit.score(test_id), fit.score(moved_last))["auroc"] > 0.95
    with pytest.raises(ValueError, match=r"channel means of 3 convolutions.*got 2"):
        fit.score(test_id[1:])  # the means of every convolution are expected


def test_bad_fits_are_refused() -> None:
    with pytest.raises(ValueError, match=r">= 2 bank images and >= 1 held-out image, got 1"):
        fit_layer_gaussians([torch.zeros(1, 3)], [torch.zeros(4, 3)])
    good = fit_layer_gaussians([torch.randn(50, 3)], [torch.randn(10, 3)])
    with pytest.raises(ValueError, match=r"one layer per convolution.*widths \[4\], got \[3\]"):
        good.check([4])
    with pytest.raises(ValueError, match=r"centre must be \(C,\) and the precision \(C, C\)"):
        LayerGaussians([torch.zeros(3)], [torch.eye(2)], torch.ones(1)).check()
    with pytest.raises(ValueError, match=r"one centre, precision and scale per layer"):
        LayerGaussians([torch.zeros(3)], [], torch.ones(1)).check()
    for first in (1, -1, 1.0, True):
        with pytest.raises(ValueError, match=rf"`first` must be an integer in \[0, 0\].*"
                                             rf"first={first!r}"):
            fit_layer_gaussians([torch.randn(50, 3)], [torch.randn(10, 3)], first=first)
    with pytest.raises(ValueError, match=r"from convolution 1 on.*widths \[3, 5\], got \[3\]"):
        LayerGaussians(good.centers, good.precisions, good.scales, first=1).check([4, 3, 5])


def test_take_refuses_a_count_it_was_not_shown() -> None:
    model = _classifier()
    with ChannelMeans(model) as recorder, torch.no_grad():
        model(torch.randn(3, 3, 16, 16))
        with pytest.raises(ValueError, match=r"saw 3 images, expected batch=5"):
            recorder.take(5)
        model(torch.randn(2, 3, 16, 16))
        assert recorder.take(2)[0].shape == (2, 4)  # the refused rows were dropped
