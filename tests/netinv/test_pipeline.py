"""netinv.pipeline: a small real pipeline on real MNIST, end to end, and resume after round 1."""

from __future__ import annotations

import math

import pytest
import torch

from netinv.config import CLASSIFIER_CONVOLUTIONS, Config, GarbageConfig
from netinv.data import prepare
from netinv.metrics import METRIC_NAMES
from netinv.models import PlainClassifier
from netinv.inference import Normalizer
from netinv.inversion import PRIOR_TERMS
from netinv.inverted import INVERTED_MEASURES
from netinv import pipeline
from netinv.config import ClassifierConfig
from netinv.pipeline import (
    augment,
    class_weights,
    garbage_noise,
    make_optimizer,
    random_shift,
    run_detector,
    run_plain,
    run_rounds,
)
from netinv.records import mean_metric
from tests.netinv.test_metrics import sklearn_fpr95
from netinv.scores import FITTED_SCORES, SCORES
from netinv.state import RoundState

OOD = ("fashionmnist", "cifar10", "tinyimagenet")
SMALL = {
    "data/train_limit": 2000, "data/test_limit": 400, "data/id_val_size": 300,
    "classifier/width": 8, "classifier/batch_size": 32, "inversion/width": 8,
    "inversion/steps": 15,
    "inversion/samples_per_round": 300, "garbage/noise_count": 200, "rounds/count": 2,
    "data/ood": ",".join(OOD),
}


@pytest.fixture(scope="module")
def small(data_root) -> tuple[Config, object]:
    config = Config.from_flat({**SMALL, "data/root": str(data_root)})
    dc = config.data
    data = prepare(dc.id, dc.ood, root=dc.root, id_val_size=dc.id_val_size,
                   train_limit=dc.train_limit, test_limit=dc.test_limit, seed=0)
    return config, data


@pytest.fixture(scope="module")
def uninterrupted(small) -> tuple[list[dict], list[RoundState]]:
    config, data = small
    states: list[RoundState] = []
    result = run_rounds(config, data=data, on_round=lambda rec, st: states.append(st))
    return result.records, states


def test_class_weights_are_inverse_frequency() -> None:
    labels = torch.tensor([0, 0, 0, 1])  # n = 2 ID classes, K = 3
    weights = class_weights(labels, garbage_count=2, num_classes=3)
    # N = 6: w_k = 6 / (3 * count_k)
    assert weights.tolist() == pytest.approx([6 / 9, 6 / 3, 6 / 6])
    assert class_weights(labels, garbage_count=0, num_classes=3)[2] == 0


def test_garbage_pool_grows_by_the_configured_amount(uninterrupted) -> None:
    records, _ = uninterrupted
    assert [r["round"] for r in records] == [0, 1, 2]
    assert records[0]["garbage_size"] == SMALL["garbage/noise_count"]
    for before, after in zip(records, records[1:]):
        assert after["garbage_added"] == SMALL["inversion/samples_per_round"]  # policy "all"
        assert after["garbage_size"] == before["garbage_size"] + after["garbage_added"]


def test_records_are_complete_and_metrics_in_range(uninterrupted) -> None:
    records, states = uninterrupted
    for record in records:
        for key in ("id_val_accuracy", "id_test_accuracy", "classifier_loss", "time_train_s",
                    "time_eval_s", "time_round_s"):
            assert math.isfinite(record[key]), key
        assert 0.0 <= record["id_test_accuracy"] <= 1.0
        rows = record["ood"]
        assert len(rows) == len(OOD) * len(SCORES) * 2  # sets x scores x {val, test}
        for row in rows:
            for metric in (*METRIC_NAMES, "garbage_share"):
                assert 0.0 <= row[metric] <= 1.0, (row, metric)
    assert records[0]["inversion_loss"] is None
    assert all(math.isfinite(r["inversion_loss"]) for r in records[1:])
    # the classifier learned MNIST well above chance even on this tiny budget
    assert records[-1]["id_test_accuracy"] > 0.5
    assert states[-1].grid is not None and states[-1].grid.dtype == torch.uint8
    assert states[-1].grid.shape == (10 * 8, 1, 28, 28)
    assert set(states[-1].test_scores) == {"id", *OOD}


def test_both_fpr95_recompute_from_stored_scores_with_sklearn(uninterrupted) -> None:
    records, states = uninterrupted
    scores = states[-1].test_scores  # what state.pt stores: "id"/OOD name -> score -> (N,)
    rows = [r for r in records[-1]["ood"] if r["split"] == "test"]
    assert len(rows) == len(OOD) * len(SCORES)
    for row in rows:
        id_np = scores["id"][row["score"]].double().numpy()
        ood_np = scores[row["ood_set"]][row["score"]].double().numpy()
        assert row["fpr95"] == pytest.approx(sklearn_fpr95(id_np, ood_np, ood_positive=False),
                                             abs=1e-12), row
        assert row["fpr95_ood_positive"] == pytest.approx(
            sklearn_fpr95(id_np, ood_np, ood_positive=True), abs=1e-12), row


def test_rounds_change_the_classifier(uninterrupted) -> None:
    _, states = uninterrupted
    head0 = states[0].classifier["head.weight"]
    head2 = states[2].classifier["head.weight"]
    assert not torch.equal(head0, head2)


def test_resume_after_round_one_reproduces_round_two(small, uninterrupted, tmp_path) -> None:
    config, data = small
    records, states = uninterrupted
    path = tmp_path / "state.pt"
    states[1].save(path)
    resumed = run_rounds(config, data=data, state=RoundState.load(path))
    assert [r["round"] for r in resumed.records] == [0, 1, 2]
    a, b = records[2], resumed.records[2]
    assert b["garbage_size"] == a["garbage_size"]
    assert b["classifier_loss"] == pytest.approx(a["classifier_loss"], rel=1e-4)
    assert b["id_test_accuracy"] == pytest.approx(a["id_test_accuracy"], abs=1e-6)
    for row_a, row_b in zip(a["ood"], b["ood"]):
        assert row_b["auroc"] == pytest.approx(row_a["auroc"], abs=1e-5)
    assert torch.allclose(resumed.state.classifier["head.weight"],
                          states[2].classifier["head.weight"], atol=1e-5)


def test_resume_after_round_zero_reproduces_round_one(small, uninterrupted) -> None:
    config, data = small
    records, states = uninterrupted
    torch.manual_seed(12345)  # whatever ran before in this process must not matter
    one_round = Config.from_flat({"rounds/count": 1}, base=config)
    resumed = run_rounds(one_round, data=data, state=states[0])
    a, b = records[1], resumed.records[1]
    assert b["inversion_loss"] == pytest.approx(a["inversion_loss"], rel=1e-4)
    assert b["classifier_loss"] == pytest.approx(a["classifier_loss"], rel=1e-4)
    assert b["id_test_accuracy"] == pytest.approx(a["id_test_accuracy"], abs=1e-6)
    assert torch.equal(resumed.state.grid, states[1].grid)


def test_resume_with_a_different_config_is_refused(small, uninterrupted) -> None:
    config, data = small
    _, states = uninterrupted
    other = Config.from_flat({"inversion/alpha_kl": 5.0}, base=config)
    with pytest.raises(ValueError, match="inversion/alpha_kl"):
        run_rounds(other, data=data, state=states[1])


def test_uncertain_policy_and_cap(small) -> None:
    config, data = small
    config = Config.from_flat({"garbage/policy": "uncertain", "garbage/ue_threshold": 0.99,
                               "garbage/pool_cap": 250, "rounds/count": 1}, base=config)
    result = run_rounds(config, data=data)
    last = result.records[-1]
    assert last["garbage_added"] <= SMALL["inversion/samples_per_round"]
    assert last["garbage_size"] <= 250


def test_inverted_samples_are_measured_every_round(uninterrupted) -> None:
    records, _ = uninterrupted
    assert all(records[0][key] is None for key in INVERTED_MEASURES)
    for record in records[1:]:
        assert all(math.isfinite(record[key]) and record[key] >= 0
                   for key in INVERTED_MEASURES), record
    # defaults: every prior off, so none is reported
    assert all(r[f"inversion_{name}"] is None for r in records for name in PRIOR_TERMS)


def test_policy_none_retrains_on_the_noise_pool_only(small, uninterrupted) -> None:
    config, data = small
    records, _ = uninterrupted
    control = Config.from_flat({"garbage/policy": "none", "rounds/count": 1}, base=config)
    states: list[RoundState] = []
    result = run_rounds(control, data=data, on_round=lambda rec, st: states.append(st))
    first, last = result.records
    assert first["id_test_accuracy"] == records[0]["id_test_accuracy"]  # same round 0
    assert last["garbage_added"] == 0
    assert last["garbage_size"] == SMALL["garbage/noise_count"]
    assert last["inversion_loss"] is None and last["inverted_frechet"] is None
    assert states[-1].grid is None
    assert last["classifier_loss"] != first["classifier_loss"]  # the classifier trained again


def test_priors_upsample_body_and_mix_policy_through_the_pipeline(small) -> None:
    config, data = small
    config = Config.from_flat({
        "inversion/feature_stats": 1.0, "inversion/feature_stats_target": "id",
        "inversion/tv": 1.0, "inversion/l2": 0.01, "inversion/diversity": 0.01,
        "inversion/arch": "upsample", "garbage/policy": "mix", "rounds/count": 1,
    }, base=config)
    result = run_rounds(config, data=data)
    last = result.records[-1]
    for name in PRIOR_TERMS:
        assert math.isfinite(last[f"inversion_{name}"]) and last[f"inversion_{name}"] >= 0
    assert 0 <= last["garbage_added"] <= SMALL["inversion/samples_per_round"]
    assert result.state.grid.shape == (10 * 8, 1, 28, 28)
    assert result.state.generator_spec["args"]["arch"] == "upsample"


def test_mean_metric_averages_over_ood_sets(uninterrupted) -> None:
    record = uninterrupted[0][-1]
    rows = [r["auroc"] for r in record["ood"] if r["score"] == "ue" and r["split"] == "val"]
    assert mean_metric(record, score="ue", metric="auroc", split="val") == pytest.approx(
        sum(rows) / len(rows))
    with pytest.raises(ValueError, match="no OOD rows"):
        mean_metric(record, score="nope", metric="auroc", split="val")


@pytest.mark.parametrize("brightness", ["uniform", "id"])
def test_garbage_noise_lies_in_the_valid_pixel_range(brightness: str) -> None:
    normalize = Normalizer((0.1307,), (0.3081,), torch.device("cpu"))
    config = GarbageConfig(noise_std=1.0, noise_brightness=brightness)
    noise = garbage_noise(500, config, (1, 28, 28), normalize, torch.Generator().manual_seed(0))
    pixels = noise * normalize.std + normalize.mean
    assert noise.shape == (500, 1, 28, 28)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    levels = pixels.mean(dim=(1, 2, 3))
    if brightness == "uniform":  # per-image levels spread over dark and bright
        assert levels.min() < 0.25 and levels.max() > 0.75
    else:  # all around the ID mean (clipping at 0 lifts it a little)
        assert levels.std() < 0.05


def test_multi_scale_noise_adds_smooth_images_and_keeps_pixel_noise() -> None:
    normalize = Normalizer((0.1307,), (0.3081,), torch.device("cpu"))
    rng = torch.Generator().manual_seed(0)
    plain = garbage_noise(300, GarbageConfig(), (1, 28, 28), normalize, rng)
    rng = torch.Generator().manual_seed(0)
    mixed = garbage_noise(300, GarbageConfig(noise_max_scale=8), (1, 28, 28), normalize, rng)
    pixels = mixed * normalize.std + normalize.mean
    assert mixed.shape == (300, 1, 28, 28)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5

    def neighbour_correlation(x: torch.Tensor) -> torch.Tensor:  # per image, horizontal pairs
        a, b = x[..., :-1].flatten(1), x[..., 1:].flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

    # grains 1, 2, 4, 8 -> four equal chunks: the first is pixel noise, the last smooth blobs
    corr = neighbour_correlation(mixed)
    assert corr[:75].mean() < 0.2 and corr[-75:].mean() > 0.8
    assert neighbour_correlation(plain).mean() < 0.2


def test_grey_noise_share_has_equal_channels_and_leaves_the_rest_unchanged() -> None:
    normalize = Normalizer((0.49, 0.48, 0.45), (0.25, 0.24, 0.26), torch.device("cpu"))

    def draw(grey: float) -> torch.Tensor:  # pixel units
        config = GarbageConfig(noise_max_scale=4, noise_grey=grey)
        noise = garbage_noise(400, config, (3, 8, 8), normalize, torch.Generator().manual_seed(0))
        return noise * normalize.std.view(1, 3, 1, 1) + normalize.mean.view(1, 3, 1, 1)

    def spread(x: torch.Tensor) -> torch.Tensor:  # per image, largest channel disagreement
        return (x - x.mean(dim=1, keepdim=True)).abs().amax(dim=(1, 2, 3))

    coloured, mixed = draw(0.0), draw(0.5)
    is_grey = spread(mixed) < 1e-5
    assert not (spread(coloured) < 1e-5).any()  # independent channels: never grey by chance
    assert 0.35 < is_grey.float().mean() < 0.65  # about the asked share
    # the coloured images are the very images of a run without grey noise, so adding the
    # option changes nothing else; a grey one is its coloured twin's first channel
    torch.testing.assert_close(mixed[~is_grey], coloured[~is_grey])
    torch.testing.assert_close(mixed[is_grey], coloured[is_grey][:, :1].expand(-1, 3, -1, -1))
    # 1-channel data: the option has nothing to do
    one = Normalizer((0.5,), (0.25,), torch.device("cpu"))
    a, b = (garbage_noise(50, GarbageConfig(noise_grey=g), (1, 8, 8), one,
                          torch.Generator().manual_seed(1)) for g in (0.0, 1.0))
    torch.testing.assert_close(a, b)


def test_random_shift_moves_each_image_and_fills_the_border() -> None:
    images = torch.rand(64, 2, 12, 12) + 1.0  # content > 0, fill = -1
    fill = torch.tensor([-1.0, -2.0])
    shifted = random_shift(images, 2, fill, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    def offset(covered: torch.Tensor) -> int:  # +k: content moved k px down/right; -k: up/left
        index = covered.nonzero().flatten()
        return int(index[0]) if index[0] > 0 else -(len(covered) - 1 - int(index[-1]))

    offsets = set()
    for before, after in zip(images, shifted):
        inside = after[0] > 0  # where content landed
        dy, dx = offset(inside.any(1)), offset(inside.any(0))
        offsets.add((dy, dx))
        assert inside.sum() == (12 - abs(dy)) * (12 - abs(dx))  # a translated, cropped copy
        src = before[:, max(-dy, 0):12 - max(dy, 0), max(-dx, 0):12 - max(dx, 0)]
        assert torch.equal(after[:, inside.any(1)][:, :, inside.any(0)], src)
        assert torch.all(after[1][~inside] == -2.0)  # each channel's own fill
    assert len(offsets) > 10 and all(abs(a) <= 2 and abs(b) <= 2 for a, b in offsets)


def test_plain_baseline_trains_an_n_class_model(small) -> None:
    config, data = small
    result = run_plain(config, data=data)
    record, test_scores = result.record, result.test_scores
    assert isinstance(result.classifier, PlainClassifier)
    assert record["round"] == 0 and record["garbage_size"] == 0
    assert record["id_test_accuracy"] > 0.2  # learned the ID classes (chance: 0.1)
    assert record["id_test_garbage_share"] == 0.0  # never predicts a class it does not have
    assert torch.equal(test_scores["id"]["p_garbage"], torch.zeros(len(data.id_test.labels)))
    sets = {row["ood_set"] for row in record["ood"]}
    assert sets == set(OOD)


def test_flip_mirrors_about_half_the_images_and_nothing_else() -> None:
    images = torch.rand(400, 3, 8, 8)
    out = augment(images, ClassifierConfig(flip=True), torch.zeros(3),
                  torch.Generator().manual_seed(0))
    mirrored = (out == images.flip(3)).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert torch.all(mirrored ^ kept)  # each image either mirrored or untouched
    assert 150 < int(mirrored.sum()) < 250
    unchanged = augment(images, ClassifierConfig(), torch.zeros(3), torch.Generator())
    assert torch.equal(unchanged, images)  # no shift, no flip: the batch as it was


@pytest.mark.parametrize("schedule", ["onecycle", "linear", "constant"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_schedules_warm_up_and_end_where_they_say(schedule: str, optimizer: str) -> None:
    model = torch.nn.Linear(3, 2)
    cfg = ClassifierConfig(optimizer=optimizer, schedule=schedule, lr=0.4, warmup=0.2)
    opt, steps = make_optimizer(model, cfg, total_steps=50)
    assert opt.kind == optimizer and len(steps) == 50
    rates = [lr for lr, _ in steps]
    peak = max(range(50), key=rates.__getitem__)
    if schedule == "constant":
        assert rates == [0.4] * 50
    else:
        assert 8 <= peak <= 10 and math.isclose(rates[peak], 0.4, rel_tol=0.05)
        assert rates[0] < 0.1 and rates[-1] < 0.02  # warms up, anneals to about 0
        assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))


def test_scratch_rounds_use_first_epochs_and_first_lr(small, monkeypatch) -> None:
    """Round 0 and the plain baseline (from scratch) make first_epochs passes peaking at
    first_lr; later rounds (fine-tuning) epochs passes at lr."""
    config, data = small
    config = Config.from_flat({"classifier/first_epochs": 3, "classifier/epochs": 1,
                               "classifier/first_lr": 0.01, "classifier/lr": 0.001,
                               "inversion/steps": 2, "rounds/count": 1}, base=config)
    passes: list[tuple[int, float]] = []
    make = pipeline.make_optimizer
    real_randperm = torch.randperm

    def spy_optimizer(model, cfg, total_steps, *, lr=None):
        optimizer, schedule = make(model, cfg, total_steps, lr=lr)
        passes.append([0, cfg.lr if lr is None else lr])  # the peak rate asked of it
        return optimizer, schedule

    def spy_randperm(*args, **kwargs):  # one shuffle per pass over the data
        passes[-1][0] += 1
        return real_randperm(*args, **kwargs)

    monkeypatch.setattr(pipeline, "make_optimizer", spy_optimizer)
    monkeypatch.setattr(pipeline.torch, "randperm", spy_randperm)
    run_rounds(config, data=data)
    run_plain(config, data=data)
    assert passes == [[3, 0.01], [1, 0.001], [3, 0.01]]


def test_cifar10_as_id_with_the_resnet_and_its_training_fields(data_root) -> None:
    """CIFAR-10 (JPEG) as ID end to end: ResNet-9 body, SGD, linear schedule, label smoothing,
    crop and flip; the 28x28 greyscale OOD sets arrive as 32x32 RGB."""
    config = Config.from_flat({
        "data/id": "cifar10", "data/ood": "mnist,tinyimagenet", "data/root": str(data_root),
        "data/train_limit": 1500, "data/test_limit": 300, "data/id_val_size": 200,
        "classifier/arch": "resnet", "classifier/width": 8, "classifier/optimizer": "sgd",
        "classifier/first_lr": 0.2, "classifier/lr": 0.02, "classifier/weight_decay": 5e-4,
        "classifier/schedule": "linear", "classifier/label_smoothing": 0.2,
        "classifier/shift": 2, "classifier/flip": True, "classifier/first_epochs": 4,
        "classifier/batch_size": 64, "inversion/width": 8, "inversion/steps": 5, "inversion/samples_per_round": 100, "garbage/noise_count": 200,
        "rounds/count": 1})
    result = run_rounds(config)
    first, last = result.records
    assert result.data.shape == (3, 32, 32)
    assert {k: v.images.shape[1:] for k, v in [("test", result.data.id_test)]} == {
        "test": (3, 32, 32)}
    assert all(t.shape[1:] == (3, 32, 32) for s in result.data.ood.values() for t in s.values())
    assert last["id_test_accuracy"] > 0.2  # chance: 0.1
    assert last["garbage_added"] > 0 and result.state.classifier_spec["args"]["arch"] == "resnet"
    assert mean_metric(first, score="p_garbage", metric="auroc", split="test") > 0.5


def test_fitted_scores_are_fitted_and_exported_as_evaluated(small, uninterrupted) -> None:
    config, data = small
    fitted = Config.from_flat({**config.to_flat(), "rounds/count": 1,
                               "rounds/fitted_scores": True, "rounds/layer_stats_first": 1})
    result = run_rounds(fitted, data=data)
    for record in result.records:
        rows = [row for row in record["ood"] if row["score"] in FITTED_SCORES]
        assert {(r["ood_set"], r["split"], r["score"]) for r in rows} == {
            (o, s, n) for o in OOD for s in ("val", "test") for n in FITTED_SCORES}
        assert all(0.0 <= r["auroc"] <= 1.0 for r in rows)
    # digits against photos: the layer statistics see the difference at once
    last = result.records[-1]
    assert mean_metric(last, score="layer_stats", metric="auroc", split="test") > 0.95
    # the exported detector refits the same statistics: its scores are the evaluation's
    detector = run_detector(result, "fused")
    assert detector.score_name == "fused" and detector.fusion.scores[0] == "energy"
    convolutions = CLASSIFIER_CONVOLUTIONS[fitted.classifier.arch]  # the first one skipped:
    assert detector.layer_stats.first == 1
    assert len(detector.layer_stats.centers) == convolutions - 1
    for name in ("id", *OOD):
        images = data.id_test.images if name == "id" else data.ood[name]["test"]
        got = detector.scores(images, FITTED_SCORES)
        for score in FITTED_SCORES:
            assert torch.allclose(got[score], result.state.test_scores[name][score],
                                  atol=1e-5), (name, score)
    # the plain baseline carries them too (features and layers of the n-class network)
    plain = run_plain(fitted, data=data).record
    assert {row["score"] for row in plain["ood"]} >= set(FITTED_SCORES)
    # without the switch (the default), a record holds the logit scores only
    assert {row["score"] for row in uninterrupted[0][-1]["ood"]} == set(SCORES)
