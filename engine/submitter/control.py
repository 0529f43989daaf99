"""Run-wide state every worker consults: stop requests and the shared pause."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from engine.errors import AbortRun


class RunControl:
    """Why the run must stop taking jobs, and until when the pool must pause.

    A 429 pauses the whole pool, not just the worker that saw it: when the
    service's limit resets, the limiter lets workers out one at a time instead
    of all at once. Every wait here ends early when the run stops, so a stop
    never sits behind a long Retry-After or a slow limiter.
    """

    def __init__(self) -> None:
        self._interrupted = False
        self.abort: AbortRun | None = None
        self._resume_at = 0.0
        self._stopped = asyncio.Event()

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    @interrupted.setter
    def interrupted(self, value: bool) -> None:
        self._interrupted = value
        if value:
            self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self._interrupted or self.abort is not None

    def abort_run(self, error: AbortRun) -> None:
        if self.abort is None:
            self.abort = error
        self._stopped.set()

    def pause_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._resume_at = max(self._resume_at, loop.time() + seconds)

    @property
    def paused(self) -> bool:
        # Asked before every request: without a pause under way, no clock is read.
        if not self._resume_at:
            return False
        if self._resume_at > asyncio.get_running_loop().time():
            return True
        self._resume_at = 0.0
        return False

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the run stops meanwhile."""
        if seconds <= 0 or self.stopping:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def wait_if_paused(self) -> None:
        loop = asyncio.get_running_loop()
        # A loop, not one sleep: another 429 may push the resume time further meanwhile.
        while (delay := self._resume_at - loop.time()) > 0 and not self.stopping:
            await self.sleep(delay)

    async def unless_stopped(self, wait: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Await ``wait()`` unless the run stops first (then it is cancelled); True if done."""
        if self.stopping:
            return False
        task = asyncio.ensure_future(wait())
        stop = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            task.result()
            return True
        return False
