"""netinv.config: one typed config, validated at construction, addressed by flat keys."""

from __future__ import annotations

import json
import math
import re

import pytest

from netinv.config import (
    SECTIONS,
    Config,
    GarbageConfig,
    Interval,
    config_field,
    config_fields,
    parse_overrides,
)


def test_defaults_are_a_sensible_mnist_run() -> None:
    config = Config()
    assert config.data.id == "mnist"
    assert set(config.data.ood) == {"fashionmnist", "cifar10", "tinyimagenet"}
    assert config.garbage.noise_brightness == "uniform"  # what made OOD detection stable


def test_flat_round_trip() -> None:
    config = Config.from_flat({"inversion/alpha_kl": 2.5, "data/ood": "cifar10,tinyimagenet",
                               "garbage/pool_cap": 4000})
    assert config.inversion.alpha_kl == 2.5
    assert config.data.ood == ("cifar10", "tinyimagenet")
    again = Config.from_flat(config.to_flat())
    assert again == config
    assert Config.from_json(config.to_json()) == config
    json.loads(config.to_json())  # strict JSON


def test_nested_sections_as_ray_tune_unflattens_them() -> None:
    config = Config.from_flat({"inversion": {"alpha_kl": 3.0}, "rounds": {"count": 4}})
    assert (config.inversion.alpha_kl, config.rounds.count) == (3.0, 4)


def test_strings_from_the_command_line_are_converted() -> None:
    config = Config.from_flat({"rounds/count": "5", "inversion/dropout": "0.25",
                               "rounds/amp": "false", "garbage/pool_cap": "none"})
    assert config.rounds.count == 5
    assert config.inversion.dropout == 0.25
    assert config.rounds.amp is False
    assert config.garbage.pool_cap is None


def test_keys_cover_every_field() -> None:
    keys = Config.keys()
    assert "inversion/alpha_kl" in keys and "garbage/policy" in keys
    assert set(keys) == set(Config().to_flat())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("garbage/ue_threshold", 1.5,
         "`garbage/ue_threshold` must lie in [0, 1], got ue_threshold=1.5"),
        ("data/id", "imagenet", "`data/id` must be one of mnist, fashionmnist"),
        ("data/ood", "mnist", "`data/ood` must not contain the ID set"),
        ("inversion/conditioning", "onehot", "one of label, vector, matrix, vector+matrix"),
        ("inversion/dropout", 1.0, "`inversion/dropout` must lie in [0, 1)"),
        ("rounds/count", 0, "`rounds/count` must lie in [1, 100]"),
        ("garbage/noise_std", 0.0, "`garbage/noise_std` must be > 0"),
        ("garbage/noise_grey", 1.5, "`garbage/noise_grey` must lie in [0, 1], got noise_grey=1.5"),
        ("rounds/device", "tpu", "`rounds/device` must be auto, cpu, cuda or cuda:N"),
        ("classifier/arch", "vgg", "`classifier/arch` must be one of cnn, resnet, resnet18"),
        ("classifier/optimizer", "lion", "`classifier/optimizer` must be one of adamw, sgd"),
        ("classifier/schedule", "step", "must be one of onecycle, linear, constant"),
        ("classifier/label_smoothing", 1.0, "`classifier/label_smoothing` must lie in [0, 1)"),
        ("classifier/first_epochs", 0, "`classifier/first_epochs` must be None or >= 1"),
        ("classifier/first_lr", 0.0, "`classifier/first_lr` must be None or lie in (0, 10]"),
    ],
)
def test_bad_values_name_field_value_and_rule(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")):
        Config.from_flat({key: value})


def test_layer_stats_first_must_be_a_convolution_of_the_chosen_body() -> None:
    assert Config.from_flat({"classifier/arch": "resnet",
                             "rounds/layer_stats_first": 7}).rounds.layer_stats_first == 7
    with pytest.raises(ValueError, match=r"`rounds/layer_stats_first` must be below the number "
                                         r"of convolutions of classifier/arch='cnn' \(3\), i.e. "
                                         r"in \[0, 2\], got layer_stats_first=3"):
        Config.from_flat({"classifier/arch": "cnn", "rounds/layer_stats_first": 3})
    with pytest.raises(ValueError, match=r"`rounds/layer_stats_first` must be >= 0"):
        Config.from_flat({"rounds/layer_stats_first": -1})


def test_all_loss_weights_zero_is_rejected() -> None:
    zero = {f"inversion/{w}": 0.0 for w in ("alpha_kl", "beta_ce", "gamma_cosine", "delta_ortho")}
    with pytest.raises(ValueError, match="at least one inversion loss weight must be > 0"):
        Config.from_flat(zero)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(KeyError, match="inversion/alpha_kl"):
        Config.from_flat({"inversion/alpha": 1.0})
    with pytest.raises(KeyError, match="section must be one of"):
        Config.from_flat({"optimizer/lr": 1.0})


@pytest.mark.parametrize(("key", "value"), [("rounds/count", 2.5), ("rounds/amp", "maybe"),
                                            ("inversion/alpha_kl", "lots"),
                                            ("rounds/count", True)])
def test_wrong_types_raise_type_error(key: str, value: object) -> None:
    with pytest.raises(TypeError, match=key):
        Config.from_flat({key: value})


def test_sections_are_frozen() -> None:
    with pytest.raises(Exception):
        GarbageConfig().policy = "uncertain"  # type: ignore[misc]


# ----------------------------------------------------------------------------- the field walk

FLOAT_KEYS = [spec.key for spec in config_fields() if spec.kind is float]


def test_the_walk_covers_every_field_with_help_and_default() -> None:
    specs = config_fields()
    assert [spec.key for spec in specs] == Config.keys()
    defaults = Config().to_flat()
    for spec in specs:
        assert spec.help, spec.key
        default = list(spec.default) if spec.kind is tuple else spec.default
        assert default == defaults[spec.key], spec.key


@pytest.mark.parametrize(("key", "shown"), [
    ("inversion/alpha_kl", ["weight of KL(P || Q)", ">= 0", "(default: 1.0)"]),
    ("garbage/policy", ["one of all, uncertain", "(default: all)"]),
    ("rounds/seed", ["[0, 2**32)", "(default: 0)"]),
    ("data/train_limit", ["None or >= 10", "(default: None)"]),
    ("data/ood", ["each one of mnist", "(default: fashionmnist,cifar10,tinyimagenet)"]),
])
def test_describe_shows_meaning_range_choices_and_default(key: str, shown: list[str]) -> None:
    text = config_field(key).describe()
    for part in shown:
        assert part in text


def test_issue_fields_are_among_the_float_fields() -> None:
    assert {"inversion/alpha_kl", "inversion/beta_ce", "inversion/gamma_cosine",
            "inversion/delta_ortho", "classifier/weight_decay", "garbage/noise_std"} <= set(
        FLOAT_KEYS)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "inf", "nan", "-Infinity"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_field_must_be_finite(key: str, value: object) -> None:
    name = key.partition("/")[2]
    with pytest.raises(ValueError, match=f"`{re.escape(key)}` must be a finite number, "
                                         f"got {name}="):
        Config.from_flat({key: value})


@pytest.mark.parametrize(("section", "name"), [("inversion", "alpha_kl"),
                                               ("garbage", "noise_std"),
                                               ("classifier", "weight_decay")])
def test_direct_construction_is_checked_too(section: str, name: str) -> None:
    with pytest.raises(ValueError, match=f"`{section}/{name}` must be a finite number"):
        SECTIONS[section](**{name: math.inf})


@pytest.mark.parametrize(("value", "ok"), [(0, True), (2**32 - 1, True), (2**32, False),
                                           (-1, False)])
def test_seed_lies_in_0_to_2_pow_32(value: int, ok: bool) -> None:
    if ok:
        assert Config.from_flat({"rounds/seed": value}).rounds.seed == value
    else:
        with pytest.raises(ValueError, match=r"`rounds/seed` must lie in \[0, 2\*\*32\)"):
            Config.from_flat({"rounds/seed": value})


@pytest.mark.parametrize(("text", "inside", "outside"), [
    ("[0, 1)", [0, 0.5, 0.999], [-0.001, 1, 2]),
    ("(0, 1]", [1e-9, 1], [0, 1.5]),
    (">= 1", [1, 10**9], [0.999, -5]),
    ("> 0", [1e-12], [0, -1]),
    ("[0, 2**32)", [0, 2**32 - 1], [2**32]),
])
def test_interval_ends(text: str, inside: list[float], outside: list[float]) -> None:
    interval = Interval(text)
    assert all(v in interval for v in inside)
    assert not any(v in interval for v in outside)


def test_parse_overrides_feeds_from_flat() -> None:
    overrides = parse_overrides(["classifier/shift=1", "inversion/alpha_kl = 2.5"])
    assert overrides == {"classifier/shift": "1", "inversion/alpha_kl": "2.5"}
    config = Config.from_flat(overrides)
    assert (config.classifier.shift, config.inversion.alpha_kl) == (1, 2.5)


def test_parse_overrides_refuses_bad_items() -> None:
    with pytest.raises(ValueError, match="`--set` takes KEY=VALUE.*item='classifier/shift'"):
        parse_overrides(["classifier/shift"])
    with pytest.raises(KeyError, match="valid keys of classifier: classifier/arch, classifier/width"):
        parse_overrides(["classifier/shfit=1"])


def test_folder_datasets_are_made_absolute(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = Config.from_flat({"data/id": "folder:parts",
                               "data/ood": "folder:~/scratches,tinyimagenet"})
    assert config.data.id == f"folder:{tmp_path / 'parts'}"
    assert config.data.ood == (f"folder:{tmp_path / 'home' / 'scratches'}", "tinyimagenet")
    again = Config.from_json(config.to_json())  # a saved config keeps its absolute paths
    assert again == config


@pytest.mark.parametrize(("flat", "match"), [
    ({"data/id": "folder:"}, r"folder:PATH with a path, e.g. folder:/data/parts, got "
                             r"name='folder:'"),
    ({"data/ood": "folder:/a,folder:/a"}, r"`data/ood` has duplicates"),
    ({"data/id": "folder:/a", "data/ood": "folder:/a"}, r"must not contain the ID set"),
    ({"data/id": "imagenet"}, r"one of mnist, .*, places365 or folder:PATH, got "
                              r"data/id='imagenet'"),
])
def test_bad_folder_datasets_are_refused(flat: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Config.from_flat(flat)


def test_describe_says_folder_paths_are_accepted() -> None:
    for key in ("data/id", "data/ood"):
        assert "or folder:PATH" in config_field(key).describe()
    assert "(0, 1)" in config_field("data/folder_test_fraction").describe()
