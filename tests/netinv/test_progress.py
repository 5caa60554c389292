"""netinv.progress: bars that never change what a loop sees, shown only when asked or on a
terminal, and the shared CLI output options."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from netinv import progress
from netinv.cli_logging import add_logging_options, apply_logging_options


@pytest.fixture(autouse=True)
def auto_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(progress.ENV, raising=False)
    yield
    progress.configure(enabled=None)


def test_off_returns_the_items_untouched_and_writes_nothing(capsys: pytest.CaptureFixture
                                                            ) -> None:
    progress.configure(enabled=False)
    assert list(progress.track(range(5), desc="train")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_on_yields_the_same_items_and_draws_a_bar_on_stderr(capsys: pytest.CaptureFixture
                                                            ) -> None:
    progress.configure(enabled=True)
    items = {"id/val": 1, "id/test": 2, "mnist/test": 3}
    assert list(progress.track(items.items(), desc="evaluate", unit="set")) == list(
        items.items())
    err = capsys.readouterr().err
    assert "evaluate" in err and "0/3" in err  # the length came from len(items)


def test_a_generator_without_len_is_counted_every_n_items(capsys: pytest.CaptureFixture
                                                          ) -> None:
    progress.configure(enabled=True)
    out = list(progress.track((i * i for i in range(7)), desc="decode", total=7, every=3))
    assert out == [0, 1, 4, 9, 16, 25, 36]
    assert "0/7" in capsys.readouterr().err

    class Bar:  # records what the bar is told: updates in batches of `every`, then closed
        def __init__(self) -> None:
            self.updates: list[int] = []
            self.closed = False

        def update(self, n: int) -> None:
            self.updates.append(n)

        def close(self) -> None:
            self.closed = True

    bar = Bar()
    assert list(progress._counted(iter("abcdefg"), bar, 3)) == list("abcdefg")
    assert bar.updates == [3, 3, 1] and bar.closed


def test_auto_mode_follows_the_environment_then_the_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress.enabled() is False  # pytest captures stderr: not a terminal
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.enabled() is True
    progress.configure(enabled=False)  # an explicit choice (-q) wins over the environment
    assert progress.enabled() is False


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="enabled='yes'"):
        progress.configure(enabled="yes")  # type: ignore[arg-type]
    progress.configure(enabled=True)
    with pytest.raises(ValueError, match="every=0"):
        list(progress.track(range(3), desc="x", every=0))


@pytest.mark.parametrize(("argv", "level", "bars"), [
    ([], logging.INFO, None),
    (["-q"], logging.WARNING, False),
    (["--log-level", "debug"], logging.DEBUG, None),
    (["-q", "--log-level", "ERROR"], logging.ERROR, False),
    (["--progress"], logging.INFO, True),
])
def test_output_options_set_the_level_and_the_bars(argv: list[str], level: int,
                                                   bars: bool | None) -> None:
    parser = argparse.ArgumentParser()
    add_logging_options(parser)
    assert apply_logging_options(parser.parse_args(argv)) == level
    assert progress._forced is bars


def test_an_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    add_logging_options(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--log-level", "loud"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err
