"""One error path for every command-line entry point.

Expected failures (bad options, bad files, missing data, unwritable folders) end as one
``error: ...`` line on stderr and exit status 2, never a traceback; anything else is a bug and
keeps its traceback. Each CLI's ``main`` is wrapped once::

    def main(argv=None) -> int:
        return run_cli(_main, argv)
"""

from __future__ import annotations

import json
import pickle
import sys
from typing import Callable, Sequence

EXIT_USAGE = 2  # bad input: an option, a file or a folder the user can fix
EXIT_FAILED = 1  # the run itself failed (e.g. a loss became NaN)


class CLIError(Exception):
    """An expected failure with a message for the user; ``exit_code`` 2 unless told."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# exceptions that mean "the input is bad", not "the code is wrong"; subclasses included
# (DataUnavailableError is a FileNotFoundError, json.JSONDecodeError and UnicodeDecodeError
# are ValueErrors)
EXPECTED = (CLIError, ValueError, TypeError, KeyError, OSError, json.JSONDecodeError,
            pickle.UnpicklingError, EOFError)


def message_of(err: BaseException) -> str:
    """The user-facing text of ``err``: its message, with the file name for OS errors."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None
            ) -> int:
    """Call ``main(argv)``; turn expected failures into ``error: <message>`` and their exit code.

    Returns:
        ``main``'s exit code, 2 for bad input (``CLIError`` may say otherwise), 130 on Ctrl+C.
    """
    try:
        return main(argv)
    except EXPECTED as err:
        print(f"error: {message_of(err)}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
