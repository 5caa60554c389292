"""netinv.models: shapes of the classifier, the conditioning and the generator; models built
from config and rebuilt from their spec."""

from __future__ import annotations

import json

import pytest
import torch

from netinv.config import (
    CLASSIFIER_ARCHS,
    CLASSIFIER_CONVOLUTIONS,
    CONDITIONINGS,
    GENERATOR_ARCHS,
    ClassifierConfig,
    InversionConfig,
)
from netinv.inference import inference_copy
from netinv.models import (
    Classifier,
    Conditioning,
    Generator,
    GlobalAvgPool,
    PlainClassifier,
    build_model,
    parameter_count,
)


@pytest.mark.parametrize("arch", CLASSIFIER_ARCHS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 32, 32)])
def test_classifier_logits_and_features(shape: tuple[int, int, int], arch: str) -> None:
    model = Classifier(shape, num_classes=11, width=8, arch=arch)
    logits, feats = model(torch.randn(4, *shape), with_features=True)
    assert logits.shape == (4, 11)
    assert feats.shape == (4, model.feature_dim)
    assert model(torch.zeros(2, *shape)).shape == (2, 11)
    logits.sum().backward()  # every parameter takes part
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("arch", CLASSIFIER_ARCHS)
def test_the_convolution_counts_the_config_checks_against_are_the_bodies(arch: str) -> None:
    model = Classifier((3, 32, 32), num_classes=11, width=8, arch=arch)
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert CLASSIFIER_CONVOLUTIONS[arch] == convolutions


@pytest.mark.parametrize("arch", CLASSIFIER_ARCHS)
def test_classifier_bodies_keep_batch_norm_foldable(arch: str) -> None:
    """The inference copy folds every conv + batch norm pair of the body and gives the same
    logits as the model in eval mode."""
    torch.manual_seed(0)
    model = Classifier((3, 32, 32), num_classes=11, width=8, arch=arch)
    model.train()
    model(torch.randn(16, 3, 32, 32))  # running statistics away from their initial values
    model.eval()
    frozen = inference_copy(model)
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(frozen(x), model(x), rtol=1e-4, atol=1e-4)
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    if arch != "resnet18":  # torchvision's blocks keep conv and bn outside one Sequential
        assert left == 0


def test_flip_tta_averages_each_image_and_its_mirror_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    plain = Classifier((3, 32, 32), num_classes=11, width=8, arch="resnet").eval()
    tta = Classifier((3, 32, 32), num_classes=11, width=8, arch="resnet", flip_tta=True).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(6, 3, 32, 32)
    logits, feats = tta(x, with_features=True)
    plain_logits, plain_feats = plain(x, with_features=True)
    mirror_logits, mirror_feats = plain(x.flip(3), with_features=True)
    torch.testing.assert_close(logits, (plain_logits + mirror_logits) / 2)
    torch.testing.assert_close(feats, (plain_feats + mirror_feats) / 2)
    assert not torch.allclose(logits, plain_logits)  # the mirror image made a difference
    torch.testing.assert_close(tta(x.flip(3)), logits)  # invariant to mirroring
    tta.train()
    plain.train()
    torch.testing.assert_close(tta(x), plain(x))  # training sees the images as given


@pytest.mark.parametrize("flip", [False, True])
def test_tta_shift_gives_the_translated_views_half_the_weight(flip: bool) -> None:
    """airbench's test-time augmentation: the mean of the untranslated views (image, mirror)
    and the mean of the views translated 1 px up-left and down-right (reflect padding) count
    one half each; training mode sees the images as given."""
    torch.manual_seed(0)
    plain = Classifier((3, 32, 32), num_classes=11, width=8, arch="resnet").eval()
    tta = Classifier((3, 32, 32), num_classes=11, width=8, arch="resnet", flip_tta=flip,
                     tta_shift=1).eval()
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(5, 3, 32, 32)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    # one view's content moves 1 px down-right (row/column 0 to 1), the other's up-left
    down_right, up_left = padded[:, :, :32, :32], padded[:, :, 2:, 2:]
    assert torch.equal(down_right[:, :, 1:, 1:], x[:, :, :31, :31])
    assert torch.equal(up_left[:, :, :31, :31], x[:, :, 1:, 1:])

    def views_mean(views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [plain(v, with_features=True) for v in views]
        if flip:
            outs += [plain(v.flip(3), with_features=True) for v in views]
        return (torch.stack([o[0] for o in outs]).mean(0),
                torch.stack([o[1] for o in outs]).mean(0))

    (base_logits, base_feats), (moved_logits, moved_feats) = (
        views_mean([x]), views_mean([down_right, up_left]))
    logits, feats = tta(x, with_features=True)
    torch.testing.assert_close(logits, 0.5 * base_logits + 0.5 * moved_logits)
    torch.testing.assert_close(feats, 0.5 * base_feats + 0.5 * moved_feats)
    assert tta.tta_views == ((2, 4) if flip else (1, 2))
    tta.train()
    plain.train()
    assert tta.tta_views == (1, 0)
    torch.testing.assert_close(tta(x), plain(x))


def test_a_spec_without_tta_shift_rebuilds_a_model_without_it() -> None:
    """Detectors saved before ``tta_shift`` existed load with it off."""
    old = {"class": "Classifier", "args": {"in_shape": [3, 32, 32], "num_classes": 11,
                                           "width": 8, "arch": "resnet", "flip_tta": True}}
    model = build_model(old)
    assert (model.flip_tta, model.tta_shift) == (True, 0)


@pytest.mark.parametrize("hw", [4, 7])
def test_global_avg_pool_matches_adaptive_avg_pool(hw: int) -> None:
    # the cnn body's pooling is written for a fast backward; values and gradients must be those
    # of AdaptiveAvgPool2d(1) + Flatten, exactly at 4x4 (three stride-2 convs of a 28 or 32 px
    # input), where 1/16 is a power of two
    x = torch.randn(8, 16, hw, hw).contiguous(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = GlobalAvgPool()(torch.relu(ours))
    ref = torch.nn.AdaptiveAvgPool2d(1)(torch.relu(theirs)).flatten(1)
    weights = torch.randn(8, 16)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    if hw == 4:
        assert torch.equal(out, ref) and torch.equal(ours.grad, theirs.grad)
    else:
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_classifier_bodies_differ_in_size() -> None:
    """ResNet-9 at width w has many more parameters than the small CNN; width scales it."""
    small = parameter_count(Classifier((3, 32, 32), 11, width=16, arch="cnn"))
    resnet = parameter_count(Classifier((3, 32, 32), 11, width=16, arch="resnet"))
    wider = parameter_count(Classifier((3, 32, 32), 11, width=32, arch="resnet"))
    assert resnet > 10 * small
    assert 3.5 < wider / resnet < 4.1  # convolutions dominate: x4 per doubling
    with pytest.raises(ValueError, match="`arch` must be one of cnn, resnet, resnet18"):
        Classifier((3, 32, 32), 11, width=16, arch="vgg")


@pytest.mark.parametrize("kind", CONDITIONINGS)
def test_conditioning_hides_the_label(kind: str) -> None:
    cond = Conditioning(kind, n_classes=10, grid=7)
    labels = torch.arange(10).repeat(3)
    soft, vector, matrix = cond.sample(labels, torch.Generator().manual_seed(0))
    assert soft.shape == (30, 10)
    assert torch.allclose(soft.sum(dim=1), torch.ones(30))
    assert torch.equal(soft.argmax(dim=1), labels)
    assert (vector is not None) == (kind in ("label", "vector", "vector+matrix"))
    assert (matrix is not None) == (kind in ("matrix", "vector+matrix"))
    if matrix is not None:
        assert matrix.shape == (30, 1, 7, 7)
        # the label's cells (index mod n == label) carry the raised values
        group_means = torch.stack([matrix.view(30, -1)[:, cond.cell_class.view(-1) == c].mean(1)
                                   for c in range(10)], dim=1)
        assert torch.equal(group_means.argmax(dim=1), labels)
    if kind in ("vector", "vector+matrix"):
        assert (soft.max(dim=1).values < 1.0).all()  # soft, not one-hot


@pytest.mark.parametrize("kind", CONDITIONINGS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_makes_images_in_pixel_range(kind: str, shape: tuple[int, int, int]) -> None:
    gen = Generator(shape, n_classes=10, latent_dim=16, width=8, conditioning=kind, dropout=0.5)
    images, soft = gen.sample(torch.arange(10), torch.Generator().manual_seed(0))
    assert images.shape == (10, *shape)
    assert images.min() >= 0 and images.max() <= 1
    assert soft.shape == (10, 10)
    assert parameter_count(gen) > 0


def test_plain_classifier_is_exactly_the_n_class_softmax() -> None:
    model = PlainClassifier((1, 28, 28), n_classes=10, width=8).eval()
    images = torch.randn(6, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (6, 11) and model.num_classes == 11
    plain = model.inner(images).softmax(dim=1)  # the n-class model's own softmax
    assert torch.equal(logits.softmax(dim=1)[:, -1], torch.zeros(6))  # garbage: exactly 0
    torch.testing.assert_close(logits.softmax(dim=1)[:, :10], plain)
    assert list(model.parameters()) == list(model.inner.parameters())  # nothing for garbage
    assert torch.all(logits[:, -1] == PlainClassifier.GARBAGE_LOGIT)


def _models() -> dict[str, torch.nn.Module]:
    return {
        "classifier": Classifier((3, 32, 32), num_classes=11, width=8),
        "resnet": Classifier((3, 32, 32), num_classes=11, width=8, arch="resnet"),
        "plain": PlainClassifier((1, 28, 28), n_classes=10, width=8),
        "plain-resnet": PlainClassifier((3, 32, 32), n_classes=10, width=8, arch="resnet"),
        "generator": Generator((1, 28, 28), n_classes=10, latent_dim=16, width=8,
                               conditioning="vector+matrix", dropout=0.25),
    }


@pytest.mark.parametrize("name", ["classifier", "resnet", "plain", "plain-resnet",
                                  "generator"])
def test_spec_rebuilds_the_same_model(name: str) -> None:
    torch.manual_seed(0)
    model = _models()[name].eval()
    spec = model.spec()
    assert json.loads(json.dumps(spec)) == spec  # JSON-able as it is
    rebuilt = build_model(spec).eval()
    assert type(rebuilt) is type(model) and rebuilt.spec() == spec
    rebuilt.load_state_dict(model.state_dict())  # same parameter names and shapes
    if name == "generator":
        z, labels = torch.randn(4, 16), torch.arange(4)
        _, vector, matrix = model.cond.sample(labels, torch.Generator().manual_seed(0))
        assert torch.equal(rebuilt(z, vector, matrix), model(z, vector, matrix))
    else:
        x = torch.randn(4, *model.in_shape)
        assert torch.equal(rebuilt(x), model(x))


def test_from_config_passes_the_config_fields() -> None:
    classifier_cfg = ClassifierConfig(width=12, arch="resnet")
    inversion_cfg = InversionConfig(latent_dim=7, width=9, conditioning="matrix", dropout=0.3)
    assert Classifier.from_config(classifier_cfg, (1, 28, 28), 11).spec()["args"] == {
        "in_shape": [1, 28, 28], "num_classes": 11, "width": 12, "arch": "resnet",
        "flip_tta": False, "tta_shift": 0}
    flipping = ClassifierConfig(width=12, arch="resnet", flip=True, tta_shift=2)
    assert PlainClassifier.from_config(flipping, (3, 32, 32), 10).spec()["args"] == {
        "in_shape": [3, 32, 32], "n_classes": 10, "width": 12, "arch": "resnet",
        "flip_tta": True, "tta_shift": 2}
    assert Generator.from_config(inversion_cfg, (1, 28, 28), 10).spec()["args"] == {
        "out_shape": [1, 28, 28], "n_classes": 10, "latent_dim": 7, "width": 9,
        "conditioning": "matrix", "dropout": 0.3, "arch": "transposed"}
    upsample_cfg = InversionConfig(arch="upsample")
    assert Generator.from_config(upsample_cfg, (1, 28, 28), 10).spec()["args"]["arch"] == (
        "upsample")


_GOOD = {"class": "Classifier", "args": {"in_shape": [1, 28, 28], "num_classes": 11, "width": 8}}


def _with_args(**args: object) -> dict:
    return {"class": "Classifier", "args": {**_GOOD["args"], **args}}


@pytest.mark.parametrize(("spec", "error", "match"), [
    ([1, 2], TypeError, "must be a dict"),
    ({"class": "Classifier"}, TypeError, "must be a dict with a dict 'args'"),
    ({"class": "ResNet", "args": {}}, ValueError, "one of Classifier, PlainClassifier"),
    ({**_GOOD, "weights": 1}, ValueError, "spec keys"),
    ({"class": "Classifier", "args": {"in_shape": [1, 28, 28], "width": 8}}, ValueError,
     "must be exactly in_shape, num_classes, width, arch, flip_tta, tta_shift"),
    (_with_args(depth=3), ValueError, "must be exactly"),
    (_with_args(in_shape=[3, 100000, 100000]), ValueError, r"H, W in \[8, 512\]"),
    (_with_args(in_shape=[2, 28, 28]), ValueError, r"C in \{1, 3\}"),
    (_with_args(in_shape=[1, 28]), TypeError, "in_shape"),
    (_with_args(width="8"), TypeError, "`width` must be an int"),
    (_with_args(width=4096), ValueError, r"`width` must lie in \[4, 256\]"),
    (_with_args(num_classes=1), ValueError, "`num_classes` must lie in"),
    (_with_args(tta_shift=5), ValueError, r"`tta_shift` must lie in \[0, 4\]"),
    ({"class": "Generator", "args": {
        "out_shape": [1, 28, 28], "n_classes": 10, "latent_dim": 8, "width": 8,
        "conditioning": "text", "dropout": 0.5}}, ValueError, "`conditioning` must be one of"),
    ({"class": "Generator", "args": {
        "out_shape": [1, 28, 28], "n_classes": 10, "latent_dim": 8, "width": 8,
        "conditioning": "label", "dropout": float("nan")}}, ValueError, "`dropout` must lie"),
    ({"class": "Generator", "args": {
        "out_shape": [1, 30, 30], "n_classes": 10, "latent_dim": 8, "width": 8,
        "conditioning": "label", "dropout": 0.5}}, ValueError, "divisible by 4"),
])
def test_build_model_refuses_bad_specs(spec: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_model(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch", GENERATOR_ARCHS)
def test_generator_bodies_make_images_of_the_id_shape(arch: str, shape: tuple[int, ...]) -> None:
    gen = Generator(shape, n_classes=10, latent_dim=16, width=8, arch=arch)
    images, soft = gen.sample(torch.arange(10), torch.Generator().manual_seed(0))
    assert images.shape == (10, *shape) and soft.shape == (10, 10)
    assert images.min() >= 0 and images.max() <= 1
    pairs, paired_soft, z = gen.sample_pairs(torch.arange(3), torch.Generator().manual_seed(0))
    assert pairs.shape == (6, *shape) and z.shape == (6, 16)
    assert torch.equal(paired_soft[:3], paired_soft[3:])  # rows i and B + i share c
    assert not torch.equal(z[:3], z[3:])


def _interior_spread(arch: str) -> float:
    """Std over the interior pixels of the up-sampling body's output for a constant input."""
    torch.manual_seed(0)
    gen = Generator((1, 32, 32), n_classes=2, latent_dim=4, width=8, dropout=0.0,
                    arch=arch).eval()
    with torch.no_grad():
        out = gen.up(torch.ones(1, gen.seed_channels, gen.grid, gen.grid))  # 1, 1, 32, 32
    return out[..., 4:-4, 4:-4].std().item()


def test_upsample_body_has_no_checkerboard_and_transposed_has() -> None:
    assert _interior_spread("upsample") < 1e-5
    assert _interior_spread("transposed") > 1e-3


def test_old_classifier_specs_without_arch_still_build() -> None:
    """Specs stored before classifier/arch existed (the shipped presets') rebuild the CNN."""
    spec = Classifier((1, 28, 28), num_classes=11, width=8).spec()
    del spec["args"]["arch"]
    assert build_model(spec).arch == "cnn"


def test_old_generator_specs_without_arch_still_build() -> None:
    spec = Generator((1, 28, 28), n_classes=10, latent_dim=8, width=8).spec()
    del spec["args"]["arch"]
    assert build_model(spec).arch == "transposed"
    with pytest.raises(ValueError, match="`arch` must be one of transposed, upsample"):
        build_model({"class": "Generator", "args": {**spec["args"], "arch": "pixelshuffle"}})
