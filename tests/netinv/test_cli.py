"""netinv.cli: `python -m netinv` runs a real small pipeline and writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from netinv.cli import build_parser, config_from_args, main
from netinv.config import config_fields
from netinv.detector import Detector
from netinv.records import mean_metric

TINY = ["--smoke-test", "--rounds", "1", "--classifier.width", "8", "--inversion.steps", "10",
        "--data.train_limit", "1000", "--data.test_limit", "200", "--data.id_val_size", "200"]


def test_every_config_field_is_an_option() -> None:
    args = build_parser().parse_args(["--inversion.alpha_kl", "2.5", "--garbage.policy",
                                      "uncertain", "--id", "fashionmnist", "--ood", "mnist"])
    config = config_from_args(args)
    assert config.inversion.alpha_kl == 2.5
    assert config.garbage.policy == "uncertain"
    assert (config.data.id, config.data.ood) == ("fashionmnist", ("mnist",))


def test_config_file_then_options_override(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"inversion/alpha_kl": 4.0, "rounds/count": 7}))
    config = config_from_args(build_parser().parse_args(["--config", str(path), "--rounds", "2"]))
    assert (config.inversion.alpha_kl, config.rounds.count) == (4.0, 2)


@pytest.mark.parametrize(("argv", "message"), [
    (["--garbage.ue_threshold", "1.5"], "ue_threshold=1.5"),
    (["--id", "imagenet"], "`data/id` must be one of"),
    (["--rounds", "two"], "must be an integer"),
    (["--score", "fused"], "--score fused needs --rounds.fitted_scores true"),
    (["--score", "odin"], "--score must be one of ue, ue_tiered, msp, p_garbage, energy, knn"),
])
def test_bad_options_fail_fast_with_a_clear_error(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code = main(["--data-root", str(tmp_path / "empty"), "--data.download", "false",
                 "--out", str(tmp_path / "out"), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(tmp_path / "empty") in err


def test_run_writes_records_grids_state_and_detector(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    fitted = ["--rounds.fitted_scores", "true"]
    proc = subprocess.run([sys.executable, "-m", "netinv", *TINY, *fitted, "--data-root",
                           str(data_root), "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "mean AUROC" in proc.stdout  # the per-round table
    lines = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [rec["round"] for rec in lines] == [0, 1]
    assert {"auroc", "aupr_in", "aupr_out", "fpr95"} <= set(lines[1]["ood"][0])
    with Image.open(out / "grid-round-1.png") as grid:
        assert grid.size[0] > 100 and grid.size[1] > 100
    assert (out / "state.pt").is_file() and (out / "detector.pt").is_file()
    assert json.loads((out / "config.json").read_text())["rounds/count"] == 1
    # with rounds/fitted_scores the records carry them and the detector can compute them
    assert {"knn", "layer_stats", "fused"} <= {row["score"] for row in lines[1]["ood"]}
    detector = Detector.load(out / "detector.pt")
    assert detector.fusion is not None and detector.fusion.scores[0] == "energy"
    val_auroc = {s: mean_metric(lines[1], score=s, metric="auroc", split="val")
                 for s in {row["score"] for row in lines[1]["ood"]}}
    # the best on validation, fitted scores included (compared by value: scores can tie)
    assert val_auroc[detector.score_name] == max(val_auroc.values())
    # resuming a finished run with more rounds continues after the last one
    proc = subprocess.run([sys.executable, "-m", "netinv", *TINY, *fitted, "--rounds", "2",
                           "--data-root", str(data_root), "--out", str(out), "--resume", "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [rec["round"] for rec in lines] == [0, 1, 2]
    # the saved config is the base of a resume; a changed setting is refused, not overwritten
    saved = (out / "config.json").read_text()
    assert main(["--out", str(out), "--resume", "--rounds", "3",
                 "--inversion.alpha_kl", "9", "-q"]) == 2
    assert (out / "config.json").read_text() == saved


def test_preset_then_config_file_then_options(tmp_path: Path) -> None:
    """defaults < --preset < --config file < explicit options."""
    from netinv.presets import get_preset

    preset = get_preset("fashionmnist")
    config = config_from_args(build_parser().parse_args(["--preset", "fashionmnist"]))
    assert config.data.id == "fashionmnist"
    assert config.classifier.epochs == preset["classifier/epochs"]
    path = tmp_path / "over.json"
    path.write_text(json.dumps({"classifier/epochs": 1, "rounds/count": 7}))
    config = config_from_args(build_parser().parse_args(
        ["--preset", "fashionmnist", "--config", str(path), "--rounds", "2"]))
    assert (config.data.id, config.classifier.epochs, config.rounds.count) == (
        "fashionmnist", 1, 2)


def test_unknown_preset_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--preset", "cifar"])
    assert "invalid choice: 'cifar'" in capsys.readouterr().err


def test_help_shows_each_fields_meaning_range_choices_and_default() -> None:
    text = build_parser().format_help()
    for spec in config_fields():
        assert f"--{spec.key.replace('/', '.')}" in text
    flat = " ".join(text.split())  # argparse wraps help lines
    assert "weight of KL(P || Q), unitless; >= 0 (default: 1.0)" in flat
    assert "one of all, uncertain, confident, mix, none (default: all)" in flat
    assert "[0, 2**32) (default: 0); = --rounds.seed" in flat  # the --seed short form
    assert "python -m netinv --smoke-test" in flat  # the docstring's commands


def test_help_answers_without_importing_torch() -> None:
    code = ("import sys\nfrom netinv.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit as stop:\n    assert stop.code == 0\n"
            "print(sorted(m for m in ('torch', 'ray', 'optuna', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_run_on_folder_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A user's own trees as ID and OOD set, by relative path: the whole run, no real data."""
    from netinv.detector import Detector
    from tests.helpers.datasets import write_tree

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETINV_CACHE", str(tmp_path / "cache"))
    write_tree(tmp_path / "parts", {"bolt": 30, "nut": 30}, size=(16, 16), mode="L")
    write_tree(tmp_path / "scratches", {"all": 20}, size=(24, 24), seed=1)
    out = tmp_path / "run"
    assert main(["--id", "folder:parts", "--ood", "folder:scratches", "--data.id_val_size", "10",
                 "--rounds", "1", "--inversion.steps", "3", "--inversion.samples_per_round",
                 "20", "--garbage.noise_count", "20", "--classifier.width", "4",
                 "--out", str(out), "-q"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data/id"] == f"folder:{tmp_path / 'parts'}"  # made absolute
    record = json.loads((out / "rounds.jsonl").read_text().splitlines()[-1])
    assert {row["ood_set"] for row in record["ood"]} == {"folder:scratches"}
    detector = Detector.load(out / "detector.pt")
    assert detector.classes == ("bolt", "nut") and detector.shape == (1, 16, 16)
    capsys.readouterr()
    assert main(["--id", "folder:missing", "--ood", "folder:scratches",
                 "--out", str(tmp_path / "run2"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: dataset name='folder:{tmp_path / 'missing'}': the folder "
                   f"{tmp_path / 'missing'} does not exist; pass an existing image-folder tree "
                   f"as folder:PATH")


@pytest.mark.usefixtures("fresh_cache")
def test_round0_cache_option_reuses_round0(data_root: Path, tmp_path: Path) -> None:
    def round0(out: Path, *extra: str) -> dict:
        assert main([*TINY, "--data-root", str(data_root), "--out", str(out), "-q",
                     *extra]) == 0
        return json.loads((out / "rounds.jsonl").read_text().splitlines()[0])

    first = round0(tmp_path / "a", "--round0-cache")
    again = round0(tmp_path / "b", "--round0-cache", "--inversion.alpha_kl", "3")
    plain = round0(tmp_path / "c", "--inversion.alpha_kl", "3")  # option off: computed
    assert (first["round0_cached"], again["round0_cached"], plain["round0_cached"]) == (
        False, True, False)
    assert {**again, "round0_cached": False} == first
