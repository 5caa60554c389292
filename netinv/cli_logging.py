"""The options every command line shares for what it prints: ``--log-level``, ``-q``,
``--progress``; and the one place that applies them.

    python -m netinv --log-level DEBUG ...      # every log line, progress bars as usual
    python -m netinv -q ...                     # warnings and results only, no bars
    python -m study.launch --progress ...       # bars even when stderr is not a terminal
"""

from __future__ import annotations

import argparse
import logging

from netinv import progress

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_logging_options(parser: argparse.ArgumentParser, *, quiet: bool = True) -> None:
    """Add ``--log-level``, ``--progress`` and (unless ``quiet=False``, for a parser that has its
    own) ``-q/--quiet`` to ``parser``, in an "output" group."""
    group = parser.add_argument_group("output")
    group.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=None,
                       metavar="LEVEL",
                       help=f"log messages at or above LEVEL, one of {', '.join(LOG_LEVELS)} "
                            "(default: INFO, WARNING with -q)")
    if quiet:
        group.add_argument("-q", "--quiet", action="store_true",
                           help="only warnings and results: no info lines, no progress bars")
    group.add_argument("--progress", action="store_true",
                       help="progress bars even when stderr is not a terminal (default: only "
                            "on a terminal, never with -q)")


def apply_logging_options(args: argparse.Namespace, *, fmt: str = FORMAT) -> int:
    """Configure the root logger and the progress bars from the parsed options.

    Returns:
        The log level applied (a ``logging`` constant).
    """
    quiet = bool(getattr(args, "quiet", False))
    name = args.log_level or ("WARNING" if quiet else "INFO")
    level = getattr(logging, name)
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    progress.configure(enabled=False if quiet else (True if args.progress else None))
    return level
