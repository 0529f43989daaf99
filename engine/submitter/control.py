"""Run-wide state every worker consults: stop requests and the shared pause."""

from __future__ import annotations

import asyncio

from engine.errors import AbortRun


class RunControl:
    """Why the run must stop taking jobs, and until when the pool must pause.

    A 429 pauses the whole pool, not just the worker that saw it: when the
    service's limit resets, the limiter lets workers out one at a time instead
    of all at once.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self.abort: AbortRun | None = None
        self._resume_at = 0.0

    @property
    def stopping(self) -> bool:
        return self.interrupted or self.abort is not None

    def abort_run(self, error: AbortRun) -> None:
        if self.abort is None:
            self.abort = error

    def pause_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._resume_at = max(self._resume_at, loop.time() + seconds)

    async def wait_if_paused(self) -> None:
        loop = asyncio.get_running_loop()
        # A loop, not an Event: another 429 may push the resume time further while we sleep.
        while (delay := self._resume_at - loop.time()) > 0 and not self.stopping:  # noqa: ASYNC110
            await asyncio.sleep(delay)
