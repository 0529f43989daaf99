"""Live progress on a terminal: done, failed, in flight, rate, ETA. Silent elsewhere."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from engine.submitter.slots import slots_eta
from engine.submitter.stats import PoolStats

if TYPE_CHECKING:
    # rich is imported only when a line is shown: a cron run never pays for it.
    from rich.live import Live
    from rich.text import Text

# The rate shown is measured over this many recent seconds, so it follows slow-downs.
RATE_WINDOW_S = 10.0


class ProgressLine:
    """The text of the progress line; pure apart from the clock it is given."""

    def __init__(
        self,
        stats: PoolStats,
        total: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._total = total
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque([(clock(), stats.done)])

    def rate(self) -> float:
        """Jobs settled per second over the last ``RATE_WINDOW_S`` seconds."""
        now = self._clock()
        samples = self._samples
        samples.append((now, self._stats.done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        then, done_then = samples[0]
        elapsed = now - then
        return (self._stats.done - done_then) / elapsed if elapsed > 0 else 0.0

    def render(self) -> Text:
        from rich.text import Text

        s = self._stats
        rate = self.rate()
        done = f"{s.done}/{self._total}" if self._total is not None else str(s.done)
        line = (
            f"done {done}  submitted {s.submitted}  failed {s.failed}  "
            f"uncertain {s.uncertain}  in flight {s.in_flight}  {rate:.1f}/s"
        )
        unsent = max(self._total - s.done, 0) if self._total is not None else 0
        if s.slots is not None or s.rendering or s.rendered or s.render_failed:
            line += (
                f"  rendering {s.rendering}  completed {s.rendered}  "
                f"render failed {s.render_failed}  waiting {s.waiting_slot}"
            )
            eta = slots_eta(s, unsent)
            if eta is not None:
                line += f"  ETA {_duration(eta)}"
        if s.slots is None and self._total is not None and rate > 0:
            line += f"  ETA {_duration(unsent / rate)}"
        now = self._clock()
        if s.service_wait_until is not None and s.service_wait_until > now:
            pause = _duration(s.service_wait_until - now)
            line += f"  waiting {pause} for the service (429, {s.refusals} so far)"
        if s.settling_until is not None:
            left = _duration(max(s.settling_until - self._clock(), 0.0))
            line += f"  waiting {left} for {s.settling} uncertain to settle"
        return Text(line)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """Redraws the progress line on stderr while a run is under way, only on a terminal."""

    def __init__(
        self,
        stats: PoolStats,
        enabled: bool,
        total: int | None = None,
        stream: TextIO | None = None,
    ) -> None:
        out = stream if stream is not None else sys.stderr
        self._out = out
        self._live: Live | None = None
        self._rerouted: list[logging.StreamHandler[TextIO]] = []
        if enabled and out.isatty():
            from rich.console import Console
            from rich.live import Live

            line = ProgressLine(stats, total)
            self._live = Live(
                get_renderable=line.render,
                console=Console(file=out),
                refresh_per_second=4,
                transient=True,
            )

    @property
    def shown(self) -> bool:
        return self._live is not None

    def __enter__(self) -> ProgressDisplay:
        if self._live is not None:
            self._live.start()
            self._reroute_logs()
        return self

    def _reroute_logs(self) -> None:
        """Send log lines through rich while the line is live, so they print above it.

        Rich swaps ``sys.stderr`` for a proxy, but a logging handler made earlier
        still holds the raw stream and would write through the live line.
        """
        proxy = sys.stderr
        if proxy is self._out:
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._out:
                handler.setStream(proxy)
                self._rerouted.append(handler)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handler in self._rerouted:
            handler.setStream(self._out)
        self._rerouted.clear()
        if self._live is not None:
            self._live.stop()
