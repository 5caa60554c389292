"""study.spaces: built-in spaces validate; malformed spaces fail fast, clearly, without Ray."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netinv.config import Config
from study import spaces

REPO = Path(__file__).resolve().parents[2]


def _space_file(tmp_path: Path, body: str, name: str = "user_space.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize("name", ["default", "quick", "paper", "refine", "inversion"])
def test_builtin_spaces_validate(name: str) -> None:
    fn, constants = spaces.load_space(name)
    samples = spaces.validate_space(fn, {"rounds/seed": 3}, samples=16)
    assert len(samples) == 16
    for flat in samples:
        config = Config.from_flat(flat)
        assert config.rounds.seed == 3
    assert set(constants) <= set(Config.keys())
    assert pickle.loads(pickle.dumps(fn)) is fn  # by reference, as OptunaSearch pickles it


def test_builtin_names_listed_and_unknown_name_lists_them() -> None:
    assert {"default", "quick", "paper", "refine"} <= set(spaces.builtin_names())
    with pytest.raises(spaces.SpaceError, match="unknown search space 'nope'.*default.*paper"):
        spaces.load_space("nope")


def test_paper_space_has_no_orthogonality_term() -> None:
    fn, constants = spaces.load_space("paper")
    assert constants["inversion/delta_ortho"] == 0.0
    assert set(spaces.suggested_keys(fn)) == {"inversion/alpha_kl", "inversion/beta_ce",
                                              "inversion/gamma_cosine", "rounds/count"}


def test_inversion_space_thresholds_only_where_the_policy_reads_them() -> None:
    fn, _ = spaces.load_space("inversion")
    samples = spaces.validate_space(fn, samples=32, seed=2)
    for flat in samples:
        policy = flat["garbage/policy"]
        assert ("garbage/ue_threshold" in flat) == (policy in ("uncertain", "mix"))
        assert ("garbage/confidence_threshold" in flat) == (policy in ("confident", "mix"))
    assert {flat["inversion/arch"] for flat in samples} == {"transposed", "upsample"}
    assert all(1000 <= flat["inversion/samples_per_round"] <= 8000 for flat in samples)


def test_default_space_threshold_only_in_uncertain_branch() -> None:
    fn, _ = spaces.load_space("default")
    for flat in spaces.validate_space(fn, samples=24, seed=1):
        if "garbage/ue_threshold" in flat:
            assert flat["garbage/policy"] == "uncertain"


@pytest.mark.parametrize("body, match", [
    ("space = 3\n", "must be a function, got int"),
    ("def other(trial):\n    return {}\n", "must define a module-level function `space"),
    ("def space(trial):\n    return [1]\n", "must return a dict of constants"),
    ("def space(trial):\n    trial.suggest_float('inversion/alpha', 0.1, 1.0)\n    return {}\n",
     r"'inversion/alpha', which is not a config key; did you mean: inversion/alpha_kl"),
    ("def space(trial):\n    return {'garbage/noise_sdt': 1.0}\n",
     r"returns a constant that uses 'garbage/noise_sdt'.*garbage/noise_std"),
    ("def space(trial):\n    return {'garbage/noise_std': -1.0}\n",
     r"`garbage/noise_std` must be > 0, got noise_std=-1.0"),
    ("def space(trial):\n    trial.suggest_int('rounds/count', 5, 1)\n    return {}\n",
     r"parameter 'rounds/count' has an impossible range: `low <= high` must hold"),
    ("def space(trial):\n    trial.suggest_float('inversion/lr', 0.0, 1.0, log=True)\n"
     "    return {}\n", r"parameter 'inversion/lr' has an impossible range: `low > 0`"),
    ("def space(trial):\n    trial.suggest_float('inversion/lr', 0.1, 2.0)\n    return {}\n",
     r"`inversion/lr` must lie in \(0, 1\]"),
    ("import nonexistent_module_xyz\ndef space(trial):\n    return {}\n",
     "importing the search space file .* failed: ModuleNotFoundError"),
])
def test_malformed_space_fails_fast(tmp_path: Path, body: str, match: str) -> None:
    path = _space_file(tmp_path, body)
    with pytest.raises(spaces.SpaceError, match=match):
        fn, _ = spaces.load_space(str(path))
        spaces.validate_space(fn)


def test_validate_rejects_non_function_and_nested_function() -> None:
    with pytest.raises(spaces.SpaceError, match="must be a module-level function.*got dict"):
        spaces.validate_space({"inversion/alpha_kl": 1.0})  # type: ignore[arg-type]
    with pytest.raises(spaces.SpaceError, match="defined at module level.*<lambda>"):
        spaces.validate_space(lambda trial: {})

    def space(trial):  # noqa: ANN001, ANN202
        return {}

    with pytest.raises(spaces.SpaceError, match="defined at module level"):
        spaces.validate_space(space)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(spaces.SpaceError, match="must exist.*missing.py"):
        spaces.load_space(str(tmp_path / "missing.py"))


def test_user_space_unpickles_in_a_fresh_process(tmp_path: Path) -> None:
    """A pickled user space loads after ``load_space`` re-imports the file (as --resume does)."""
    path = _space_file(tmp_path, """
        def space(trial):
            trial.suggest_float("inversion/alpha_kl", 0.1, 1.0, log=True)
            return {"rounds/count": 1}
    """)
    fn, constants = spaces.load_space(str(path))
    assert constants == {"rounds/count": 1}
    blob = tmp_path / "space.pkl"
    blob.write_bytes(pickle.dumps(fn))
    code = ("import pickle, sys; from study import spaces; "
            f"spaces.load_space({str(path)!r}); fn = pickle.load(open({str(blob)!r}, 'rb')); "
            "print(fn.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == fn.__module__
