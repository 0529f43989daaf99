"""The rate limit every worker of one account shares, kept on the database's clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import NoReturn, Protocol

from engine.errors import EngineError, LeaseLost
from engine.ledger.database import LedgerUnavailable
from engine.ledger.postgres.fleet import Lease, lease_left, lease_margin
from engine.scaleout.jobs import CURRENT_JOB
from engine.submitter.constants import SHARED_RATE_MARGIN
from engine.submitter.rate import Rate, StartRefused, bucket_shape

# A wait the database asks for is slept in pieces no longer than this, so a lease that
# runs short meanwhile is seen before the next start, not after.
_LONGEST_NAP_S = 1.0


class StartGate(Protocol):
    """engine.ledger.postgres.fleet.Fleet, as the limiter uses it."""

    async def start_allowed(
        self,
        account: str,
        n: int,
        period_s: float,
        *,
        max_rendering: int | None = None,
        campaign: str | None = None,
        key: str | None = None,
    ) -> float: ...


class SharedLimiter:
    """A ``Limiter`` whose starts are granted by the database, for every worker of one
    account together: one start every ``bucket_shape(rate).interval_s`` (the one-machine
    limiter's spacing, which never lets more than the rate into any window, with no
    burst), widened by ``SHARED_RATE_MARGIN``, on the database's clock.

    No start is taken with less than ``lease_margin(lease)`` of ``lease`` left by this
    worker's monotonic clock, looked at again after the grant (right before the request
    leaves). Then, and when the database cannot be asked, ``on_stop`` gets the cause
    (``LeaseLost``, ``LedgerUnavailable``), so the worker stops everything, and
    ``acquire`` raises ``StartRefused``.

    ``max_rendering`` (--max-rendering): a start for a job (``CURRENT_JOB``: a create,
    not a status call) is granted only with one of the account's render slots free, and
    takes it (engine.scaleout.slots).
    """

    def __init__(
        self,
        gate: StartGate,
        account: str,
        rate: Rate,
        lease: Lease,
        on_stop: Callable[[EngineError], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_rendering: int | None = None,
    ) -> None:
        shape = bucket_shape(rate)
        self._max_rendering = max_rendering
        self._n = max(int(shape.capacity), 1)
        self._period_s = self._n * shape.interval_s * (1.0 + SHARED_RATE_MARGIN)
        self._gate = gate
        self._account = account
        self._lease = lease
        self._on_stop = on_stop
        self._sleep = sleep
        self._clock = clock

    def has_capacity(self, amount: float = 1) -> bool:
        """Never known without asking the database: every start is a wait a stop may end."""
        return False

    async def acquire(self, amount: float = 1) -> None:
        while True:
            self._check_lease()
            job = CURRENT_JOB.get() if self._max_rendering is not None else None
            try:
                if job is None:
                    wait = await self._gate.start_allowed(self._account, self._n, self._period_s)
                else:
                    wait = await self._gate.start_allowed(
                        self._account,
                        self._n,
                        self._period_s,
                        max_rendering=self._max_rendering,
                        campaign=job[0],
                        key=job[1],
                    )
            except LedgerUnavailable as err:
                self._stop(err)
            if wait <= 0:
                # A grant taken with the lease about to end is left unused.
                self._check_lease()
                return
            await self._sleep(min(wait, _LONGEST_NAP_S))

    def _check_lease(self) -> None:
        margin = lease_margin(self._lease)
        if lease_left(self._lease, self._clock()) <= margin:
            self._stop(
                LeaseLost(
                    f"worker {self._lease.worker_id}'s lease ends in less than "
                    f"{margin:g} s (its heartbeats are not getting through): "
                    "it sends nothing more"
                )
            )

    def _stop(self, cause: EngineError) -> NoReturn:
        self._on_stop(cause)
        raise StartRefused(str(cause)) from cause

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
