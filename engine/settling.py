"""The end of a run: reconcile, resend what is proven absent, wait out short graces.

A run must not end with ``uncertain`` jobs it could settle by waiting (a kill
leaves the jobs it had marked ``submitting`` uncertain from the next start, and
so does a dropped answer near the end). So after the feed, in at most
``SETTLE_ROUNDS`` rounds: reconcile; resend the jobs proven absent; or, when
nothing can be resent and the grace of some uncertain jobs ends within
``SETTLE_WAIT_MAX_S`` and within ``--max-wait``, wait until the last of those ends
(a grace beyond ``--max-wait`` ends the run instead, saying so: the user bounded
its waits). A round with nothing
to resend ends the run when it has no grace to wait for, or when its listing
proved nothing (a service that cannot be listed is not waited on).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.api.port import ApiRouter, api_name
from engine.ledger.reconcile import ReconcileResult, reconcile
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.prepare.keys import idempotency_key
from engine.submitter.constants import SETTLE_ROUNDS, SETTLE_WAIT_MAX_S
from engine.submitter.control import RunControl, utc_clock
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Limiter
from engine.submitter.stats import PoolStats
from engine.submitter.workers import run_workers

log = logging.getLogger(__name__)

# time.time and the event loop's timers may disagree a little: wake this much after
# a grace ends, so the reconcile that follows sees it over.
_WAKE_PAD_S = 0.5


@dataclass
class Settler:
    ledger: Ledger
    writer: BatchWriter
    client: ApiRouter
    limiter: Limiter
    control: RunControl
    stats: PoolStats
    grace_s: float
    #: Whether the progress line shows the wait; otherwise a notice goes to stderr.
    shown: bool = False
    clock: Callable[[], float] = time.time
    #: How a wait sleeps; by default ``control.sleep``, which a stop ends at once.
    sleep: Callable[[float], Awaitable[None]] | None = None
    found: int = 0
    absent: int = 0
    _warned: set[str] = field(default_factory=set)

    async def reconcile(self) -> ReconcileResult:
        result = await reconcile(self.ledger, self.client, self.limiter, self.grace_s, self.clock)
        self.found += result.found
        self.absent += result.absent
        if result.problem is not None:
            log.warning("reconcile could not prove absence: %s", result.problem)
        return result

    async def settle(
        self, submitter: Submitter, take: Callable[[], bool], concurrency: int, depth: int
    ) -> None:
        """Reconcile and resend (bodies as stored when first sent), waiting out short graces.

        ``take`` says whether ``--limit`` lets one more job go. A job given a video
        another job holds is named (with both keys) once the answer is on disk, before
        the reconcile that may settle it, and once more at the end for any resend.
        """
        for round_ in range(1, SETTLE_ROUNDS + 1):
            await self.writer.flush()
            self._warn_shared_videos()
            if self.control.stopping:
                return
            result = await self.reconcile()
            campaign = self.ledger.campaign_id
            items = [
                SubmitItem(
                    j.key,
                    json.loads(j.body),
                    j.request_sha256 or "",
                    j.attempts,
                    j.body,
                    api=api_name(j.api),
                    idempotency_key=None if campaign is None else idempotency_key(campaign, j.key),
                )
                for j in self.ledger.resendable()
                if j.body is not None and take()
            ]
            if items:
                queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue()
                for item in items:
                    queue.put_nowait(item)
                for _ in range(concurrency):
                    queue.put_nowait(None)
                await run_workers(queue, submitter, concurrency, self.control, depth)
                continue
            now = self.clock()
            ends = [end for end in result.grace_ends if end - now <= SETTLE_WAIT_MAX_S]
            # A listing that proved nothing now would most likely prove nothing after
            # the wait either: the run ends, and the jobs' errors say why.
            if not ends or result.problem is not None or round_ == SETTLE_ROUNDS:
                return
            if max(ends) - now > self.control.max_wait_s:
                self._beyond_max_wait(max(ends), len(ends))
                return
            await self._wait(max(max(ends) - now, 0.0) + _WAKE_PAD_S, len(ends))
        # The rounds ran out after a resend: its answers too are named.
        await self.writer.flush()
        self._warn_shared_videos()

    def _warn_shared_videos(self) -> None:
        for key, error in self.ledger.shared_videos():
            if key not in self._warned:
                self._warned.add(key)
                log.warning("job %s: %s", key, error)

    def _beyond_max_wait(self, end: float, jobs: int) -> None:
        log.warning(
            "the reconcile grace of %d uncertain job(s) ends in %.0fs, longer than --max-wait "
            "(%.0fs): the run ends without waiting; the next run or `heygen-batch reconcile` "
            "after %s settles them",
            jobs,
            end - self.clock(),
            self.control.max_wait_s,
            utc_clock(end),
        )

    async def _wait(self, seconds: float, jobs: int) -> None:
        if not self.shown:
            log.warning(
                "waiting %.0fs for the reconcile grace of %d uncertain job(s), then checking "
                "them again (Ctrl-C stops; the next run or `reconcile` settles them)",
                seconds,
                jobs,
            )
        self.stats.settling = jobs
        self.stats.settling_until = time.monotonic() + seconds
        try:
            await (self.sleep or self.control.sleep)(seconds)
        finally:
            self.stats.settling = 0
            self.stats.settling_until = None
