"""The progress line: what it says, and that it is drawn only on a terminal."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from engine.progress import ProgressDisplay, ProgressLine
from engine.submitter.stats import PoolStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_names_every_count() -> None:
    stats = PoolStats(in_flight=3, submitted=7, failed=1, uncertain=2)
    text = ProgressLine(stats, clock=Clock()).render().plain
    assert "done 10" in text
    assert "submitted 7" in text
    assert "failed 1" in text
    assert "uncertain 2" in text
    assert "in flight 3" in text
    assert "ETA" not in text  # no total, no estimate


def test_rate_follows_recent_progress_and_eta_uses_the_total() -> None:
    clock = Clock()
    stats = PoolStats()
    line = ProgressLine(stats, total=100, clock=clock)
    clock.now += 5
    stats.submitted = 50
    assert line.rate() == 10.0
    # Fast at first, then stalled for a long while: the shown rate drops to what is recent.
    for _ in range(4):
        clock.now += 5
        line.rate()
    assert line.rate() < 5.0
    clock.now += 5
    stats.submitted = 80
    text = line.render().plain
    assert "done 80/100" in text
    assert "ETA 0:" in text


def test_eta_reads_in_hours_when_long() -> None:
    clock = Clock()
    stats = PoolStats()
    line = ProgressLine(stats, total=100_000, clock=clock)
    clock.now += 10
    stats.submitted = 10
    assert "ETA 27:46:30" in line.render().plain


def test_nothing_is_drawn_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressDisplay(PoolStats(submitted=1), enabled=True, stream=stream) as display:
        assert not display.shown
    assert stream.getvalue() == ""


def test_nothing_is_drawn_when_disabled_even_on_a_terminal() -> None:
    stream = Terminal()
    with ProgressDisplay(PoolStats(), enabled=False, stream=stream) as display:
        assert not display.shown
    assert stream.getvalue() == ""


def test_a_terminal_gets_the_line() -> None:
    stream = Terminal()
    with ProgressDisplay(PoolStats(submitted=4, in_flight=2), enabled=True, stream=stream) as d:
        assert d.shown
    assert "in flight 2" in stream.getvalue()


def test_log_lines_go_through_rich_while_the_line_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with ProgressDisplay(PoolStats(), enabled=True):
            assert handler.stream is not terminal  # rich's proxy, which prints above the line
            logging.getLogger("engine.test").warning("line 7: invalid")
        assert handler.stream is terminal
    finally:
        root.removeHandler(handler)
    assert "line 7: invalid" in terminal.getvalue()
