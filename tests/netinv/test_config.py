"""netinv.config: one typed config, validated at construction, addressed by flat keys."""

from __future__ import annotations

import json

import pytest

from netinv.config import Config, GarbageConfig


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
        ("rounds/device", "tpu", "`rounds/device` must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_values_name_field_value_and_rule(key: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")):
        Config.from_flat({key: value})


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
