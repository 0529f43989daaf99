"""Run-wide state every worker consults: stop requests and the shared pause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import AbortRun
from engine.submitter.constants import DEFAULT_MAX_WAIT_S, SHUTDOWN_GRACE_S, WAIT_NOTICE_S

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LongWait:
    """A wait the service asked for that is longer than the run accepts (--max-wait)."""

    seconds: float
    #: When the service will take requests again: a wall-clock timestamp.
    until: float
    max_wait_s: float
    #: Not a Retry-After but a full render queue: no render slot freed for ``seconds``.
    slots: bool = False

    @property
    def message(self) -> str:
        if self.slots:
            return (
                f"No render ended for {self.seconds:.0f} s, the --max-wait: the run stopped, "
                "and the jobs not sent stay pending. Run again later (`heygen-batch poll "
                "--until-done` follows the renders under way)."
            )
        return (
            f"The service asked to wait {self.seconds:.0f} s (Retry-After), longer than "
            f"--max-wait ({self.max_wait_s:.0f} s): the run stopped, and the jobs not sent "
            f"stay pending. Run again after {utc_clock(self.until)}."
        )


def utc_clock(timestamp: float) -> str:
    """A wall-clock time as users read it in a message: ``17:05:12 UTC``, with the date
    when it is not today."""
    when = datetime.fromtimestamp(timestamp, UTC)
    today = datetime.now(UTC).date()
    return when.strftime("%H:%M:%S UTC" if when.date() == today else "%Y-%m-%d %H:%M:%S UTC")


async def let_finish(work: asyncio.Task[None]) -> None:
    """After a stop: give ``work`` (its requests in flight) ``SHUTDOWN_GRACE_S`` to finish,
    then cancel it. Raises what ``work`` raised when it ends within the grace."""
    try:
        await asyncio.wait_for(asyncio.shield(work), SHUTDOWN_GRACE_S)
    except TimeoutError:
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work


class RunControl:
    """Why the run must stop taking jobs, and until when the pool must pause.

    A 429 pauses the whole pool, not just the worker that saw it: when the
    service's limit resets, the limiter lets workers out one at a time instead
    of all at once. Every wait here ends early when the run stops, so a stop
    never sits behind a long Retry-After or a slow limiter.

    A wait the service asks for beyond ``max_wait_s`` stops the run instead
    (``too_long``), decided before anyone sleeps.
    """

    def __init__(self, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        self._interrupted = False
        self.abort: AbortRun | None = None
        self.max_wait_s = max_wait_s
        self.too_long: LongWait | None = None
        self._announced_until = 0.0
        self._resume_at = 0.0
        self._pause_began = 0.0
        #: Seconds of pauses that are over, for ``work_clock``.
        self._paused_s = 0.0
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
        return self._interrupted or self.abort is not None or self.too_long is not None

    def abort_run(self, error: AbortRun) -> None:
        if self.abort is None:
            self.abort = error
        self._stopped.set()

    def service_wait(self, seconds: float, now: float) -> bool:
        """The service asked for ``seconds`` of wait at wall-clock ``now``: False when
        that is beyond --max-wait, which stops the run; else the run waits, and a wait
        worth noticing is said once."""
        until = now + seconds
        if seconds > self.max_wait_s:
            if self.too_long is None:
                self.too_long = LongWait(seconds, until, self.max_wait_s)
            self._stopped.set()
            return False
        if seconds > WAIT_NOTICE_S and until > self._announced_until + WAIT_NOTICE_S:
            self._announced_until = until
            log.warning(
                "the service asked to wait %.0f s (Retry-After); resuming at %s",
                seconds,
                utc_clock(until),
            )
        return True

    def slots_stalled(self, now: float) -> None:
        """No render slot freed within --max-wait (a full render queue): the run stops."""
        if self.too_long is None:
            self.too_long = LongWait(self.max_wait_s, now, self.max_wait_s, slots=True)
        self._stopped.set()

    def pause_for(self, seconds: float) -> None:
        now = asyncio.get_running_loop().time()
        self._end_pause(now)
        if not self._resume_at:
            self._pause_began = now
        self._resume_at = max(self._resume_at, now + seconds)

    def _end_pause(self, now: float) -> None:
        if self._resume_at and self._resume_at <= now:
            self._paused_s += self._resume_at - self._pause_began
            self._resume_at = 0.0

    def work_clock(self) -> float:
        """A monotonic clock that stands still while the pool is paused for the service:
        a job's retry budget is spent by its own faults, not by the service's waits."""
        now = asyncio.get_running_loop().time()
        self._end_pause(now)
        paused = self._paused_s
        if self._resume_at:
            paused += now - self._pause_began
        return now - paused

    @property
    def paused(self) -> bool:
        # Asked before every request: without a pause under way, no clock is read.
        if not self._resume_at:
            return False
        now = asyncio.get_running_loop().time()
        if self._resume_at > now:
            return True
        self._end_pause(now)
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

    async def unless_stopped(self, wait: Callable[[], Coroutine[Any, Any, object]]) -> bool:
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
