"""netinv.run_folder: one run per folder, refusal of a folder holding a run, clean failed starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netinv.cli_errors import CLIError
from netinv.run_folder import LOCK_FILE, claim_run_folder, write_atomic


def test_claim_creates_the_folder_and_holds_a_lock_with_our_pid(tmp_path: Path) -> None:
    out = tmp_path / "a" / "run"
    with claim_run_folder(out, resume=False, overwrite=False):
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
        write_atomic(out / "config.json", "{}")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]  # lock gone, no temp files


def test_a_held_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with claim_run_folder(tmp_path, resume=False, overwrite=False):
        with pytest.raises(CLIError, match=rf"is in use by another run \(pid {os.getpid()}\)"):
            with claim_run_folder(tmp_path, resume=True, overwrite=False):
                pass
        assert (tmp_path / LOCK_FILE).is_file()  # the refused claim left the holder's lock


def test_the_lock_of_a_killed_run_is_not_stale(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; "
            "from netinv.run_folder import claim_run_folder\n"
            "with claim_run_folder(Path(sys.argv[1]), resume=False, overwrite=False):\n"
            "    print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CLIError, match=rf"\(pid {holder.pid}\)"):
            with claim_run_folder(tmp_path, resume=False, overwrite=False):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(holder.pid)  # left behind
    with claim_run_folder(tmp_path, resume=False, overwrite=False):  # the kernel freed it
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("name", ["config.json", "state.pt", "rounds.jsonl", "detector.pt"])
def test_a_folder_holding_a_run_is_refused_and_left_untouched(tmp_path: Path, name: str
                                                              ) -> None:
    (tmp_path / name).write_text("old run")
    with pytest.raises(CLIError, match=f"already holds a run \\({name}\\); continue it with "
                                       f"--resume or replace it with --overwrite"):
        with claim_run_folder(tmp_path, resume=False, overwrite=False):
            pass
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text() == "old run"


def test_resume_keeps_and_overwrite_removes_the_old_run(tmp_path: Path) -> None:
    for name in ("config.json", "state.pt", "grid-round-3.png", "notes.txt"):
        (tmp_path / name).write_text("old")
    with claim_run_folder(tmp_path, resume=True, overwrite=False):
        assert (tmp_path / "state.pt").read_text() == "old"
    with claim_run_folder(tmp_path, resume=False, overwrite=True):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "notes.txt"]


def test_a_fresh_run_failing_before_its_first_round_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    with pytest.raises(FileNotFoundError):
        with claim_run_folder(out, resume=False, overwrite=False):
            write_atomic(out / "config.json", "{}")
            raise FileNotFoundError("no data")
    assert list(tmp_path.iterdir()) == []


def test_a_run_failing_after_a_finished_round_keeps_its_files(tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError):
        with claim_run_folder(tmp_path, resume=False, overwrite=False):
            write_atomic(tmp_path / "config.json", "{}")
            (tmp_path / "state.pt").write_text("round 1")
            raise FloatingPointError("loss became NaN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "state.pt"]


@pytest.mark.parametrize(("out", "message"), [("file", "--out must be a folder"),
                                              ("file/run", "cannot be created: Not a directory")])
def test_out_that_is_a_file_or_under_one_is_refused(tmp_path: Path, out: str, message: str
                                                    ) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CLIError, match=message):
        with claim_run_folder(tmp_path / out, resume=False, overwrite=False):
            pass
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
    assert (tmp_path / "file").read_text() == "x"


def test_write_atomic_replaces_whole_files_with_the_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "rounds.jsonl"
    write_atomic(path, "one\n")
    write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["rounds.jsonl"]
