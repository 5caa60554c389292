"""A run's output folder (``python -m netinv --out``): one run at a time, never a silent replace.

    with claim_run_folder(out, resume=False, overwrite=False):
        write_atomic(out / "config.json", config.to_json())
        ...

:func:`claim_run_folder` creates the folder, takes an exclusive lock on ``out/.lock`` (the lock
file holds the owner's pid), refuses a folder that already holds a run unless the caller resumes
or overwrites it, and, when a fresh run fails before its first finished round, removes what it
wrote, so a refused or failed start leaves nothing behind. The lock is ``fcntl.flock``: the
kernel drops it when its process dies, so a crashed run never leaves a stale lock (POSIX only).
:func:`write_atomic` replaces a file through a temp name unique to the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path
from typing import Iterator

from netinv.cli_errors import CLIError

RUN_FILES = ("config.json", "state.pt", "rounds.jsonl", "detector.pt")  # a run's own outputs
GRIDS = "grid-round-*.png"  # also a run's own outputs
LOCK_FILE = ".lock"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename, so readers
    never see half a file; the temp name is unique, so concurrent writers cannot clobber it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:  # O_EXCL: never someone else's file; mode 0o666 less the umask, as open() gives
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _outputs(out: Path) -> list[Path]:
    return [out / name for name in RUN_FILES if (out / name).exists()] + sorted(out.glob(GRIDS))


def _lock(out: Path) -> int:
    """Take the exclusive lock of ``out``; return its file descriptor."""
    path = out / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise CLIError(f"--out {out} is not writable: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CLIError(f"--out {out} is in use by another run (pid {holder}); wait for it "
                           f"or choose another --out") from None
        try:  # the previous holder may have removed the file between our open and flock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(out: Path, fd: int) -> None:
    (out / LOCK_FILE).unlink(missing_ok=True)  # before close: nobody can lock the old file
    os.close(fd)


@contextlib.contextmanager
def claim_run_folder(out: Path, *, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Hold ``out`` for one run for the duration of the ``with`` block.

    Args:
        out: The run folder; created (with its parents) if missing.
        resume: The run continues the one in ``out`` (its files stay).
        overwrite: The run replaces the one in ``out``: its files are removed first.

    Raises:
        CLIError: ``out`` is a file or cannot be created, is locked by another live run, or
            already holds a run's files and neither ``resume`` nor ``overwrite`` is set.
    """
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out must be a folder, got --out={out} (a file)")
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out {out} cannot be created: {err.strerror}") from None
    fd, owned = None, False
    try:
        fd = _lock(out)
        existing = [p.name for p in _outputs(out)]
        if existing and not (resume or overwrite):
            raise CLIError(f"--out {out} already holds a run ({', '.join(existing[:4])}); "
                           f"continue it with --resume or replace it with --overwrite")
        if overwrite:
            for path in _outputs(out):
                path.unlink()
        owned = True  # from here on, every run file in out is this run's
        yield out
    except BaseException:
        if owned and not resume and not (out / "state.pt").exists():  # no round finished
            for path in _outputs(out):
                path.unlink()
        if fd is not None:
            _unlock(out, fd)
            fd = None
        for folder in created:  # only the folders this call made, and only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        if fd is not None:
            _unlock(out, fd)
