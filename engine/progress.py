"""Live progress on a terminal: done, failed, in flight, rate, ETA. Silent elsewhere."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from engine.submitter.pool import PoolStats


class ProgressDisplay:
    """Redraws a one-line status on stderr while a run is under way."""

    def __init__(self, stats: PoolStats, enabled: bool, total: int | None = None) -> None:
        self._stats = stats
        self._total = total
        self._started = time.monotonic()
        self._live: Live | None = None
        if enabled and sys.stderr.isatty():
            self._live = Live(
                get_renderable=self._render,
                console=Console(stderr=True),
                refresh_per_second=4,
                transient=True,
            )

    def _render(self) -> Text:
        s = self._stats
        done = s.submitted + s.failed + s.uncertain
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = done / elapsed
        line = (
            f"submitted {s.submitted}  failed {s.failed}  uncertain {s.uncertain}  "
            f"in flight {s.in_flight}  {rate:.1f}/s"
        )
        if self._total and rate > 0:
            line += f"  ETA {max(self._total - done, 0) / rate:.0f}s"
        return Text(line)

    def __enter__(self) -> ProgressDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
