"""netinv.detector: export a real tiny run, reload it, score raw images in every layout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from netinv.config import Config
from netinv.data import to_shape
from netinv.detector import GARBAGE, Detector
from netinv.knn import knn_distance
from netinv.metrics import ood_metrics
from netinv.models import PlainClassifier
from netinv.pipeline import RunResult, run_rounds
from netinv.scores import SCORES
from tests.helpers.tiny import tiny_detector

TINY = {"data/train_limit": 2000, "data/test_limit": 500, "data/id_val_size": 500,
        "inversion/steps": 20, "rounds/count": 1, "classifier/width": 8,
        "inversion/samples_per_round": 200, "garbage/noise_count": 200}


@pytest.fixture(scope="module")
def run(data_root: Path) -> RunResult:
    config = Config.from_flat({**TINY, "data/root": str(data_root), "data/download": False})
    return run_rounds(config)


@pytest.fixture(scope="module")
def detector(run: RunResult) -> Detector:
    return Detector.from_run(run.classifier, Config.from_flat(run.state.config), run.data)


@pytest.fixture(scope="module")
def images(run: RunResult) -> torch.Tensor:
    return run.data.id_test.images[:64]  # uint8 (64, 1, 28, 28)


def test_export_reload_matches_live_scores(run: RunResult, detector: Detector,
                                           tmp_path: Path) -> None:
    path = tmp_path / "detector.pt"
    detector.save(path)
    payload = torch.load(path, weights_only=True)  # safe load works on the raw file
    assert payload["format"] == "netinv.detector" and payload["score"] == "ue_tiered"
    loaded = Detector.load(path)
    assert loaded.classes == tuple(run.data.classes) and loaded.shape == (1, 28, 28)
    assert loaded.config == run.state.config
    sets = {"id": run.data.id_test.images,
            **{name: splits["test"] for name, splits in run.data.ood.items()}}
    for name, pixels in sets.items():
        for score in SCORES:
            live = run.state.test_scores[name][score]
            assert torch.equal(loaded.score(pixels, score=score), live), (name, score)
    assert torch.equal(loaded.score(sets["id"]), run.state.test_scores["id"]["ue_tiered"])


def test_from_state_file_equals_from_run(run: RunResult, detector: Detector,
                                         tmp_path: Path, images: torch.Tensor) -> None:
    path = tmp_path / "state.pt"
    run.state.save(path)
    from_file = Detector.from_state_file(path, score="energy")
    assert from_file.score_name == "energy"
    assert torch.equal(from_file.logits(images), detector.logits(images))
    assert torch.equal(from_file.score(images), detector.score(images, score="energy"))


def test_from_state_without_metadata_needs_it(run: RunResult, images: torch.Tensor) -> None:
    state = run.state
    bare = type(state)(round=state.round, config=state.config, classifier=state.classifier,
                       classifier_spec=state.classifier_spec, generator=None,
                       garbage_pool=state.garbage_pool[:1])
    with pytest.raises(ValueError, match="lacks shape, mean, std, classes"):
        Detector.from_state(bare)
    detector = Detector.from_state(bare, data=run.data)
    assert detector.score(images).shape == (64,)


def test_every_layout_and_dtype_gives_the_same_scores(detector: Detector,
                                                      images: torch.Tensor) -> None:
    reference = detector.score(images)
    hw = images[:, 0]  # 64, 28, 28
    nhwc = images.permute(0, 2, 3, 1)  # 64, 28, 28, 1
    rgb = images.expand(-1, 3, -1, -1)  # equal channels: luminance gives the grey back
    rgba = torch.cat([rgb, torch.full_like(images, 255)], dim=1)
    variants = {
        "NCHW uint8 tensor": images,
        "NHW uint8 numpy": hw.numpy(),
        "NHWC uint8 numpy": nhwc.numpy(),
        "NCHW float32 tensor": images.float() / 255,
        "NHW float64 numpy": hw.numpy().astype(np.float64) / 255,
        "NHWC float16 tensor": (nhwc.float() / 255).half(),
        "NCHW int64 tensor": images.long(),
        "NCHW RGB uint8": rgb,
        "NHWC RGB float numpy": rgb.permute(0, 2, 3, 1).numpy() / 255.0,
        "NHWC RGBA uint8 numpy": rgba.permute(0, 2, 3, 1).numpy(),
        "non-contiguous numpy": np.ascontiguousarray(nhwc.numpy()[::-1])[::-1],
    }
    for name, variant in variants.items():
        assert torch.equal(detector.score(variant), reference), name


def test_rgb_32x32_input_to_an_mnist_detector(detector: Detector) -> None:
    rgb = torch.randint(0, 256, (16, 32, 32, 3), generator=torch.Generator().manual_seed(0),
                        dtype=torch.uint8)
    scores = detector.score(rgb.numpy())
    assert scores.shape == (16,) and torch.isfinite(scores).all()
    converted = to_shape(rgb.permute(0, 3, 1, 2).contiguous(), (1, 28, 28))
    assert torch.equal(scores, detector.score(converted))
    assert torch.equal(detector.score(rgb, layout="NHWC"), scores)


def test_predict_names_classes_and_garbage(run: RunResult, detector: Detector) -> None:
    names = detector.predict(run.data.id_test.images)
    assert set(names) <= {*run.data.classes, GARBAGE}
    truth = [run.data.classes[y] for y in run.data.id_test.labels.tolist()]
    accuracy = np.mean([n == t for n, t in zip(names, truth)])
    assert accuracy == pytest.approx(run.records[-1]["id_test_accuracy"])
    # noise like the garbage class's own start: N(0, 1) in normalised units, back in pixels
    gen = torch.Generator().manual_seed(1)
    mean, std = detector.mean[0], detector.std[0]
    noise = (mean + std * torch.randn(64, 28, 28, generator=gen)).clamp(0, 1)
    predicted = detector.predict(noise)
    assert GARBAGE in predicted
    assert len(detector.logits(noise)) == 64


@pytest.mark.parametrize(("images", "error", "match"), [
    (torch.zeros(28, 28, dtype=torch.uint8), ValueError, r"images\[None\]"),
    (torch.zeros(2, 1, 1, 28, 28, dtype=torch.uint8), ValueError, "must be a batch"),
    (torch.zeros(0, 28, 28, dtype=torch.uint8), ValueError, "at least one image"),
    (np.zeros((0, 28, 28, 3), np.uint8), ValueError, "at least one image"),
    (torch.full((2, 28, 28), 2.0), ValueError, r"\[0, 1\].*max=2.0"),
    (np.full((2, 28, 28), -0.5), ValueError, r"\[0, 1\].*min=-0.5"),
    (torch.full((2, 28, 28), float("nan")), ValueError, r"\[0, 1\]"),
    (torch.full((2, 28, 28), 300), ValueError, r"\[0, 255\].*max=300"),
    (torch.zeros(2, 2, 28, 28, dtype=torch.uint8), ValueError, "1, 3 or 4 channels"),
    (torch.zeros(2, 3, 8, 3, dtype=torch.uint8), ValueError, "layout='NCHW'"),
    (torch.zeros(2, 28, 28, dtype=torch.bool), TypeError, "dtype=torch.bool"),
    ([[0, 1], [1, 0]], TypeError, "type=list"),
    (np.array([["a"]]), TypeError, "numeric array"),
])
def test_bad_input_raises(detector: Detector, images: object, error: type,
                          match: str) -> None:
    with pytest.raises(error, match=match):
        detector.score(images)  # type: ignore[arg-type]


def test_bad_arguments_raise(detector: Detector, images: torch.Tensor, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`score` must be one of ue, ue_tiered"):
        detector.score(images, score="odin")
    with pytest.raises(ValueError, match="`layout` must be one of"):
        detector.score(images, layout="CHW")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="netinv detector"):
        Detector.load(tmp_path / "other.pt")


def test_detector_does_not_import_the_training_loop() -> None:
    code = "import sys, netinv.detector; assert 'netinv.pipeline' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())


def test_any_integer_dtype_is_taken_as_8_bit_levels() -> None:
    detector = tiny_detector()
    pixels = torch.randint(0, 256, (6, 28, 28), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    reference = detector.score(pixels)
    for dtype in (np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64):
        assert torch.equal(detector.score(pixels.numpy().astype(dtype)), reference), dtype
    assert torch.equal(detector.score(pixels.to(torch.uint16)), reference)
    too_bright = pixels.numpy().astype(np.uint16)
    too_bright[0, 0, 0] = 1000  # a 16-bit level: not rescaled, refused
    with pytest.raises(ValueError, match=r"\[0, 255\], got min=0, max=1000 \(dtype=torch.uint16"):
        detector.score(too_bright)


def _nan_weight(payload: dict) -> None:
    payload["classifier"]["head.weight"][0, 0] = float("nan")


TAMPERED = {  # what is changed, and the key the error names
    "NaN std": (lambda p: p.update(std=[float("nan")]), "std"),
    "zero std": (lambda p: p.update(std=[0.0]), "std"),
    "inf mean": (lambda p: p.update(mean=[float("inf")]), "mean"),
    "NaN weight": (_nan_weight, "head.weight"),
    "huge shape": (lambda p: p.update(shape=[3, 100000, 100000]), "shape"),
    "huge model": (lambda p: p["model"]["args"].update(in_shape=[1, 100000, 100000]), "model"),
    "missing key": (lambda p: p.pop("mean"), "'mean' is missing"),
    "shape is a string": (lambda p: p.update(shape="1,28,28"), "'shape' must be list"),
    "class names are numbers": (lambda p: p.update(classes=list(range(10))), "'classes'"),
    "amp is a string": (lambda p: p.update(amp="yes"), "'amp' must be bool"),
    "batch size is a string": (lambda p: p.update(batch_size="64"),
                               "'batch_size' must be int or NoneType"),
    "batch size is zero": (lambda p: p.update(batch_size=0), "batch_size=0"),
    "unknown score": (lambda p: p.update(score="odin"), "`score` must be one of"),
    "old version": (lambda p: p.update(format_version=1), "'format_version' must be 2"),
    "newer version": (lambda p: p.update(format_version=99), "'format_version' must be 2"),
    "a generator": (lambda p: p["model"].update({"class": "Generator"}), "'model'"),
    "weights of another width": (lambda p: p["model"]["args"].update(width=8), "'classifier'"),
    "config is a list": (lambda p: p.update(config_json="[1]"), "'config_json'"),
    "config is not JSON": (lambda p: p.update(config_json="{"), "'config_json'"),
    "KNN bank of another width": (lambda p: p.update(knn_bank=torch.zeros(20, 3).half(),
                                                     knn_k=5), "'knn_bank'"),
    "KNN k without a bank": (lambda p: p.update(knn_k=5), "'knn_bank' must be Tensor"),
    "KNN bank of unnormalised rows": (lambda p: p.update(
        knn_bank=torch.full((20, p["classifier"]["head.weight"].shape[1]), 1e6), knn_k=5),
        "'knn_bank'"),
    "knn score without a bank": (lambda p: p.update(score="knn"), "key 'score' is 'knn'"),
    "fused score without a fusion": (lambda p: p.update(score="fused"),
                                     "key 'score' is 'fused'"),
    "layer score without statistics": (lambda p: p.update(score="layer_stats"),
                                       "key 'score' is 'layer_stats'"),
    "KNN k above the bank": (lambda p: p.update(knn_bank=p["classifier"]["head.weight"][:, :]
                                                .new_zeros(3, p["classifier"]["head.weight"]
                                                           .shape[1]), knn_k=4), "k=4"),
}


def _fitted_tiny_detector() -> Detector:
    """The tiny detector with knn, layer_stats and fused fitted on 40 random images."""
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return tiny_detector().fit(images, k=3)


FITTED_TAMPERED = {  # what is changed in a fitted detector's file, and what the error names
    "a layer too few": (lambda p: p["layer_centers"].pop(), "'layer_centers'"),
    "a layer of another width": (lambda p: p["layer_centers"].__setitem__(0, torch.zeros(7)),
                                 "'layer_centers'"),
    "NaN precision": (lambda p: p["layer_precisions"][1].fill_(float("nan")),
                      "'layer_first': layer statistics must be finite, got NaN or inf in "
                      "layer 1's precision"),
    "a first layer past the widths": (lambda p: p.update(layer_first=1),
                                      "from convolution 1 on must have one layer per"),
    "a negative first layer": (lambda p: p.update(layer_first=-1),
                               "first convolution must be an integer >= 0, got first=-1"),
    "a first layer as text": (lambda p: p.update(layer_first="2"),
                              "first convolution must be an integer >= 0, got first='2'"),
    "float64 centre": (lambda p: p["layer_centers"].__setitem__(0, p["layer_centers"][0]
                                                                .double()),
                       "float32 tensors, got dtype=torch.float64 in layer 0's centre"),
    "scales of another shape": (lambda p: p.update(layer_scales=p["layer_scales"][:, None]),
                                "one number per layer (L,), got shape=(3, 1)"),
    "zero scale": (lambda p: p["layer_scales"].zero_(), "layer scales must be > 0"),
    "scales without centres": (lambda p: p.pop("layer_centers"), "'layer_centers' must be list"),
    "fusion of an unknown score": (lambda p: p["fusion_scores"].__setitem__(0, "odin"),
                                   "'fusion_scores'"),
    "fusion of itself": (lambda p: p["fusion_scores"].__setitem__(0, "fused"),
                         "'fusion_scores'"),
    "fusion statistics of another shape": (lambda p: p.update(fusion_stats=torch.ones(2, 2)),
                                           "'fusion_stats'"),
    "fusion of a number": (lambda p: p["fusion_scores"].__setitem__(0, [1]),
                           "'fusion_scores'"),
    "zero fusion std": (lambda p: p["fusion_stats"][:, 1].zero_(), "std > 0"),
    "fusion without its knn part": (lambda p: (p.pop("knn_bank"), p.pop("knn_k")),
                                    "'fusion_scores'"),
}


def test_a_fitted_file_round_trips(tmp_path: Path) -> None:
    detector = _fitted_tiny_detector()
    detector.save(tmp_path / "d.pt")
    loaded = Detector.load(tmp_path / "d.pt")
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    names = ["knn", "layer_stats", "fused"]
    assert all(torch.equal(a, b) for a, b in zip(loaded.scores(images, names).values(),
                                                 detector.scores(images, names).values()))


def test_layer_statistics_from_a_later_convolution_round_trip(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    detector = tiny_detector().fit(images, k=3, layer_stats_first=2)
    assert detector.layer_stats.first == 2 and len(detector.layer_stats.centers) == 1
    assert "layer_stats=1 layers from convolution 2" in repr(detector)
    detector.save(tmp_path / "d.pt")
    loaded = Detector.load(tmp_path / "d.pt")
    assert loaded.layer_stats.first == 2
    names = ["layer_stats", "fused"]
    assert all(torch.equal(a, b) for a, b in zip(loaded.scores(images, names).values(),
                                                 detector.scores(images, names).values()))
    # a file written before the key existed holds statistics of every convolution
    payload = torch.load(tmp_path / "d.pt", weights_only=True)
    _fitted_tiny_detector().save(tmp_path / "old.pt")
    old = torch.load(tmp_path / "old.pt", weights_only=True)
    assert payload["layer_first"] == 2 and old.pop("layer_first") == 0
    torch.save(old, tmp_path / "old.pt")
    assert Detector.load(tmp_path / "old.pt").layer_stats.first == 0


@pytest.mark.parametrize(("fitted", "case"), [*((False, c) for c in sorted(TAMPERED)),
                                               *((True, c) for c in sorted(FITTED_TAMPERED))])
def test_load_refuses_tampered_files(fitted: bool, case: str, tmp_path: Path) -> None:
    path = tmp_path / "detector.pt"
    (_fitted_tiny_detector() if fitted else tiny_detector()).save(path)
    payload = torch.load(path, weights_only=True)
    change, key = (FITTED_TAMPERED if fitted else TAMPERED)[case]
    change(payload)
    torch.save(payload, path)
    with pytest.raises(ValueError, match=re.escape(key)) as info:
        Detector.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage", bytes(range(256)) * 8])
def test_load_refuses_unreadable_files(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "detector.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a netinv detector") as info:
        Detector.load(path)
    assert str(path) in str(info.value) and "weights_only" not in str(info.value)


def test_a_valid_tiny_file_loads(tmp_path: Path) -> None:  # the tampering cases' baseline
    detector = tiny_detector()
    detector.save(tmp_path / "detector.pt")
    loaded = Detector.load(tmp_path / "detector.pt")
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    assert torch.equal(loaded.logits(images), detector.logits(images))
    assert loaded.batch_size is None  # chunks chosen by the device it runs on


def test_a_fixed_batch_size_is_kept_and_chunks_alike(tmp_path: Path) -> None:
    detector = tiny_detector()
    detector.batch_size = 3  # e.g. 2048 in the detectors exported before it went by device
    detector.save(tmp_path / "detector.pt")
    loaded = Detector.load(tmp_path / "detector.pt")
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    assert loaded.batch_size == 3
    torch.testing.assert_close(loaded.logits(images), tiny_detector().logits(images))


# ----------------------------------------------------------------------------- the KNN score


def test_scores_fitted_on_training_images_flag_ood(run: RunResult, tmp_path: Path) -> None:
    detector = Detector.from_run(run.classifier, Config.from_flat(run.state.config), run.data)
    for name in ("knn", "layer_stats", "fused"):
        with pytest.raises(ValueError, match=rf"score='{name}' needs statistics.*\.fit\("):
            detector.score(run.data.id_test.images, score=name)
    assert detector.fit(run.data.id_train.images, k=5, bank_size=1000) is detector
    assert detector.knn_bank.shape == (1000, run.classifier.feature_dim)
    names = ["knn", "layer_stats", "fused", "ue_tiered"]
    id_scores = detector.scores(run.data.id_test.images, names)
    for name, splits in run.data.ood.items():
        ood_scores = detector.scores(splits["test"], names)
        for score in names[:3]:  # digits vs clothes or photos, in feature and layer space
            auroc = ood_metrics(id_scores[score], ood_scores[score])["auroc"]
            assert auroc > 0.9, (name, score, auroc)
        # fused is the sum of its parts, each standardised by the held-out statistics
        parts = detector.scores(splits["test"], detector.fusion.scores)
        expected = sum((parts[n] - m) / s for n, (m, s) in
                       zip(detector.fusion.scores, detector.fusion.stats.tolist()))
        assert torch.allclose(ood_scores["fused"], expected, atol=1e-5)
    assert detector.fusion.scores == ("ue_tiered", "knn", "layer_stats")  # its own score first
    # held-out ID images score near 0 on each standardised part: mean 0, std 1 there
    assert torch.allclose(detector.fusion.stats[:, 0],
                          torch.stack([id_scores[n].mean() for n in detector.fusion.scores]),
                          atol=0.5 * detector.fusion.stats[:, 1].max().item())
    # saved with its bank and k; a reload scores the same, and can make knn its default
    detector.save(tmp_path / "knn.pt")
    loaded = Detector.load(tmp_path / "knn.pt")
    assert loaded.knn_k == 5 and torch.equal(loaded.knn_bank, detector.knn_bank)
    assert torch.equal(loaded.score(run.data.id_test.images, score="knn"), id_scores["knn"])
    as_default = Detector(loaded.classifier, shape=loaded.shape, mean=loaded.mean,
                          std=loaded.std, classes=loaded.classes, score="knn", amp=loaded.amp,
                          knn_bank=loaded.knn_bank, knn_k=3)
    third = knn_distance(loaded.knn_bank, loaded.features(run.data.id_test.images), 3)
    assert torch.equal(as_default(run.data.id_test.images), third)


def test_features_are_the_classifiers_penultimate_features(run: RunResult,
                                                           detector: Detector,
                                                           images: torch.Tensor) -> None:
    normalized = (images.float() / 255 - detector.mean[0]) / detector.std[0]
    with torch.no_grad():
        expected = run.classifier.eval().features(normalized)
    got = detector.features(images)
    assert got.shape == (len(images), run.classifier.feature_dim)
    logits, features = detector.logits_and_features(images)  # one pass gives both
    assert torch.equal(logits, detector.logits(images)) and torch.equal(features, got)
    assert torch.allclose(got, expected, rtol=0.05, atol=0.01)  # bf16 and a folded batch norm


def test_a_plain_classifier_has_features_and_a_constant_garbage_logit() -> None:
    plain = PlainClassifier((1, 28, 28), 3, width=4).eval()
    x = torch.randn(5, 1, 28, 28)
    logits, features = plain(x, with_features=True)
    assert torch.equal(logits, plain(x)) and features.shape == (5, plain.inner.feature_dim)
    assert (logits[:, -1] == PlainClassifier.GARBAGE_LOGIT).all()


def test_fit_refuses_bad_arguments() -> None:
    detector = tiny_detector()
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"at least 4 ID training images \(2 for the bank, 2 "
                                         r"held out\), got shape=\(3, 28"):
        detector.fit(images[:3])
    with pytest.raises(TypeError, match="torch.Tensor or numpy.ndarray"):
        detector.fit([[0, 1]])
    with pytest.raises(ValueError, match=r"`knn_k` must be an integer >= 1, got knn_k=0"):
        Detector(detector.classifier, shape=detector.shape, mean=detector.mean,
                 std=detector.std, classes=detector.classes, knn_k=0)
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 8\].*k=9"):
        detector.fit(images, k=9)  # 2 of 10 images are held out
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 4\].*k=5"):
        detector.fit(images, k=5, bank_size=4)
    with pytest.raises(ValueError, match=r"`bank_size` must be an integer >= 2 or None, got "
                                         r"bank_size=1"):
        detector.fit(images, bank_size=1)
    with pytest.raises(ValueError, match=r"`bank_size` must be an integer >= 2.*'5'"):
        detector.fit(images, bank_size="5")
    for first in (3, -1, True, "1"):  # the tiny CNN has 3 convolutions
        with pytest.raises(ValueError, match=rf"`layer_stats_first` must be an integer in "
                                             rf"\[0, 2\] \(the classifier's 3 convolutions\), "
                                             rf"got layer_stats_first={first!r}"):
            detector.fit(images, layer_stats_first=first)
    with pytest.raises(ValueError, match=r"the fused score's part 'p_garbage' is constant on "
                                         r"the 2 held-out images"):
        plain = PlainClassifier((1, 28, 28), 10, width=4)  # p_garbage is 0 on every image
        Detector(plain, shape=(1, 28, 28), mean=(0.5,), std=(0.25,), classes=detector.classes,
                 ).fit(images, k=2, fused_logit_score="p_garbage")
    with pytest.raises(ValueError, match=r"one of ue, ue_tiered, msp, p_garbage, energy, knn, "
                                         r"layer_stats, fused"):
        detector.score(images, score="mahalanobis")
    assert detector.knn_bank is None and detector.layer_stats is None  # nothing half-built
    assert detector.fusion is None
    assert len(detector.fit(images, k=2, bank_size=None).knn_bank) == 8
    # the smallest fit: 2 bank and 2 held-out images, finite statistics
    smallest = tiny_detector().fit(images[:4], k=1)
    assert len(smallest.knn_bank) == 2 and torch.isfinite(smallest.fusion.stats).all()
    # a refused refit leaves the earlier fit whole
    before = (detector.knn_bank.clone(), detector.layer_stats, detector.fusion)
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 3\]"):
        detector.fit(images, k=4, bank_size=3)
    assert torch.equal(detector.knn_bank, before[0]) and detector.fusion is before[2]
    assert detector.layer_stats is before[1]
    # numpy input and numpy integers work as their Python counterparts
    fitted = detector.fit(images.numpy(), k=np.int64(2), bank_size=np.int64(5))
    assert fitted.knn_bank.shape[0] == 5 and fitted.knn_k == 2
    # the bank is the detector's own: changing the caller's tensor changes nothing
    bank = detector.knn_bank.clone()
    copy = Detector(detector.classifier, shape=detector.shape, mean=detector.mean,
                    std=detector.std, classes=detector.classes, knn_bank=bank, knn_k=2)
    bank.zero_()
    assert torch.equal(copy.knn_bank, detector.knn_bank)


# ----------------------------------------------------------------------------- the caller's API


def test_call_returns_the_scores() -> None:
    detector = tiny_detector()
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)
    assert torch.equal(detector(images), detector.score(images))
    assert torch.equal(detector(images, score="msp"), detector.score(images, score="msp"))


@pytest.mark.parametrize(("mean", "std", "shape"), [
    ((0.1307,), (0.3081,), (5, 1, 28, 28)),  # MNIST's usual Normalize
    ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (5, 3, 32, 32)),  # ImageNet's, RGB input
])
def test_normalized_batches_score_as_their_pixels(mean: tuple, std: tuple,
                                                  shape: tuple) -> None:
    from torchvision.transforms import v2

    pixels = torch.randint(0, 256, shape, dtype=torch.uint8)
    batch = v2.Normalize(mean, std)(pixels.float() / 255)  # ToTensor() then Normalize()
    plain = tiny_detector()
    told = tiny_detector()
    told.input_normalization = (mean, std)
    assert told.input_normalization == (pytest.approx(mean), pytest.approx(std))
    assert torch.equal(told(batch), plain(pixels))
    assert not torch.equal(plain.score(batch.clamp(0, 1)), plain(pixels))  # undo is needed
    assert torch.equal(told(pixels), plain(pixels))  # uint8 input is raw pixels either way


def test_load_takes_the_input_normalization(tmp_path: Path) -> None:
    path = tmp_path / "d.pt"
    tiny_detector().save(path)
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    batch = (pixels.float() / 255 - 0.5) / 0.25
    detector = Detector.load(path, input_normalization=([0.5], [0.25]))
    assert torch.equal(detector(batch), tiny_detector()(pixels))


@pytest.mark.parametrize(("normalization", "error", "match"), [
    (((0.5,), (0.0,)), ValueError, r"std > 0, got input_normalization="),
    (((0.5, 0.5), (0.2,)), ValueError, r"as many finite entries"),
    (((float("nan"),), (0.2,)), ValueError, r"finite"),
    ((0.5,), TypeError, r"must be a pair \(mean, std\), got input_normalization=\(0.5,\)"),
])
def test_bad_input_normalization_is_refused(normalization: object, error: type, match: str,
                                            tmp_path: Path) -> None:
    path = tmp_path / "d.pt"
    tiny_detector().save(path)
    with pytest.raises(error, match=match):
        Detector.load(path, input_normalization=normalization)


def test_wrongly_declared_normalization_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.pt"
    tiny_detector().save(path)
    detector = Detector.load(path, input_normalization=((0.5,), (0.25,)))
    with pytest.raises(ValueError, match=r"one entry per input channel.*2 entries|"
                                         r"must lie in \[0, 1\].*mean=\[0.5\]"):
        detector(torch.full((2, 1, 8, 8), 5.0))  # 5 * 0.25 + 0.5 = 1.75: not a pixel
    rgb = Detector.load(path, input_normalization=((0.5, 0.5), (0.2, 0.2)))
    with pytest.raises(ValueError, match=r"one entry per input channel \(or one\), got 2 "
                                         r"entries for images of shape=\(2, 3, 8, 8\)"):
        rgb(torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
def test_load_a_preset_by_name(name: str) -> None:
    from netinv.presets import preset_detector_path

    by_name = Detector.load(name)
    assert by_name.config["data/id"] == name
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    assert torch.equal(by_name(images), Detector.load(preset_detector_path(name))(images))


def test_a_name_that_is_no_preset_is_a_missing_file() -> None:
    with pytest.raises(ValueError, match=r"'svhn' is not a netinv detector.*cannot be read"):
        Detector.load("svhn")
