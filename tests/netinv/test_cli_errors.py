"""`python -m netinv` on bad input: exit code 2, one `error:` line naming the input, and nothing
left behind; two runs on one --out: the second is refused at once; a finished run is never
replaced without --overwrite."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from netinv.cli import main


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


A_STATE = _torch_bytes({"round": 1, "config": {"rounds/count": 1},
                        "classifier": {"w": torch.zeros(256)}, "generator": None,
                        "garbage_pool": torch.zeros(4, 1, 28, 28)})

# (case, files written under tmp first, argv, text the error line must contain; {tmp} is the
# test's folder). Each case also passes --out {tmp}/new unless it names its own --out.
BAD_INPUTS = [
    ("threads zero", {}, ["--threads", "0"],
     "argument --threads: must be an integer >= 1, got 0"),
    ("threads negative", {}, ["--threads", "-2"],
     "argument --threads: must be an integer >= 1, got -2"),
    ("threads text", {}, ["--threads", "all"],
     "argument --threads: must be an integer >= 1, got 'all'"),
    ("resume and overwrite", {}, ["--resume", "--overwrite"],
     "argument --overwrite: not allowed with argument --resume"),
    ("out is a file", {"f": b"x"}, ["--out", "{tmp}/f"], "--out must be a folder, got --out={tmp}/f"),
    ("out under a file", {"f": b"x"}, ["--out", "{tmp}/f/run"],
     "--out {tmp}/f/run cannot be created: Not a directory"),
    ("out holds a run", {"old/config.json": b"{}", "old/rounds.jsonl": b"\n"},
     ["--out", "{tmp}/old"], "--out {tmp}/old already holds a run (config.json, rounds.jsonl); "
                             "continue it with --resume or replace it with --overwrite"),
    ("config missing", {}, ["--config", "{tmp}/nope.json"],
     "--config file not found: {tmp}/nope.json"),
    ("config a list", {"c.json": b"[1, 2]"}, ["--config", "{tmp}/c.json"],
     "--config {tmp}/c.json must hold a JSON object of flat config keys"),
    ("config not UTF-8", {"c.json": b'{"rounds/count": "\xff\xfe"}'},
     ["--config", "{tmp}/c.json"], "--config {tmp}/c.json is not UTF-8 text"),
    ("config not JSON", {"c.json": b'{"rounds/count": 3,'}, ["--config", "{tmp}/c.json"],
     "--config {tmp}/c.json is not valid JSON: Expecting property name"),
    ("config unknown key", {"c.json": b'{"inversion/alpha": 2}'}, ["--config", "{tmp}/c.json"],
     "--config {tmp}/c.json: unknown config key 'inversion/alpha'"),
    ("config wrong type", {"c.json": b'{"rounds/count": [3]}'}, ["--config", "{tmp}/c.json"],
     "--config {tmp}/c.json: `rounds/count` must be an integer"),
    ("config infinite weight", {"c.json": b'{"inversion/beta_ce": Infinity}'},
     ["--config", "{tmp}/c.json"], "`inversion/beta_ce` must be a finite number, got beta_ce=inf"),
    ("option infinite weight", {}, ["--inversion.alpha_kl", "inf"],
     "`inversion/alpha_kl` must be a finite number, got alpha_kl=inf"),
    ("option NaN decay", {}, ["--classifier.weight_decay", "nan"],
     "`classifier/weight_decay` must be a finite number, got weight_decay=nan"),
    ("seed too large", {}, ["--seed", str(2**32)],
     "`rounds/seed` must lie in [0, 2**32), got seed=4294967296"),
    ("unknown score", {}, ["--score", "entropy"], "--score must be one of ue, ue_tiered"),
    ("resume without state", {}, ["--resume", "--out", "{tmp}"],
     "--resume needs the run's --out folder with a state.pt, got --out={tmp}"),
    ("resume truncated state", {"r/state.pt": A_STATE[: len(A_STATE) // 2]},
     ["--resume", "--out", "{tmp}/r"], "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' "
                                       "is not a netinv round state"),
    ("resume random state", {"r/state.pt": bytes(range(256)) * 8},
     ["--resume", "--out", "{tmp}/r"], "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' is not a netinv round state"),
    ("resume empty state", {"r/state.pt": b""}, ["--resume", "--out", "{tmp}/r"],
     "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' is not a netinv round state"),
    ("resume incomplete state", {"r/state.pt": _torch_bytes({"round": 1})},
     ["--resume", "--out", "{tmp}/r"], "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' is not a netinv round state"),
    ("resume state of a list", {"r/state.pt": _torch_bytes([1, 2])},
     ["--resume", "--out", "{tmp}/r"], "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' is not a netinv round state"),
    ("resume state without config", {"r/state.pt": _torch_bytes(
        {"round": 1, "config": [1], "classifier": {}, "generator": None,
         "garbage_pool": torch.zeros(1)})},
     ["--resume", "--out", "{tmp}/r"], "--resume: cannot use {tmp}/r/state.pt: '{tmp}/r/state.pt' is not a netinv round state"),
    ("missing data", {}, ["--data-root", "{tmp}/empty", "--data.download", "false"],
     "{tmp}/empty"),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        return stop.code


@pytest.mark.parametrize(("files", "argv", "message"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_error_line_exit_2_and_leaves_nothing(
        tmp_path: Path, capsys, files: dict[str, bytes], argv: list[str], message: str) -> None:
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "new")]
    before = _snapshot(tmp_path)
    assert _exit_code([*argv, "-q"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "error: " in last and message.replace("{tmp}", str(tmp_path)) in last, err
    assert "Traceback" not in err
    if not last.startswith("python -m netinv: error:"):  # not argparse's usage + error
        assert err.count("\n") == 1, err
    assert _snapshot(tmp_path) == before


TINY = ["--smoke-test", "--rounds", "1", "--classifier.width", "8", "--inversion.steps", "10",
        "--data.train_limit", "1000", "--data.test_limit", "200", "--data.id_val_size", "200",
        "--threads", "1", "-q"]


def _netinv(*argv: str) -> list[str]:
    return [sys.executable, "-m", "netinv", *TINY, *argv]


def test_two_runs_on_one_out_and_no_silent_replace(data_root: Path, tmp_path: Path,
                                                   capsys) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(_netinv("--data-root", str(data_root), "--out", str(out)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until the first run holds the folder, then freeze it there, so the second one
        # meets a live holder however fast or slow this machine is
        while not (out / ".lock").is_file() or not (out / ".lock").read_text().strip():
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(_netinv("--data-root", str(data_root), "--out", str(out)),
                                capture_output=True, text=True, timeout=600)
        assert second.returncode == 2
        assert second.stderr == (f"error: --out {out} is in use by another run "
                                 f"(pid {first.pid}); wait for it or choose another --out\n")
    finally:
        first.send_signal(signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    records = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [rec["round"] for rec in records] == [0, 1]
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "detector.pt", "grid-round-1.png", "rounds.jsonl", "state.pt"]

    # a plain re-run into the finished run's folder is refused and changes nothing
    before = _snapshot(out)
    assert main([*TINY, "--data-root", str(data_root), "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _snapshot(out) == before

    # --overwrite replaces it: the new run's config, and the old files are gone or rewritten
    (out / "grid-round-7.png").write_bytes(b"from an older, longer run")
    proc = subprocess.run(_netinv("--data-root", str(data_root), "--out", str(out),
                                  "--overwrite", "--seed", "5"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "config.json").read_text())["rounds/seed"] == 5
    assert not (out / "grid-round-7.png").exists()
    assert (out / "state.pt").read_bytes() != before["state.pt"]
    assert not (out / ".lock").exists()
    assert set(os.listdir(out)) == set(before)
