"""One campaign as a worker serves it: claim its pending jobs, send them through the
pool, and settle what is left uncertain.

Claimed jobs go into the queue ``run``'s feeder fills, and from there through the same
marking stage and ``Submitter`` (engine.submitter.workers): a job is committed
``submitting``, under this worker's fence, before its request leaves. Only what feeds
the queue and how the lane ends differ from ``run``: jobs come from ``Fleet.claim``
instead of a file, and the lane ends when the campaign has nothing left to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.api.client import HeyGenClient
from engine.api.port import api_name
from engine.errors import AbortRun
from engine.ledger.postgres.fleet import Claimed, Fleet, Lease
from engine.ledger.reconcile import ReconcileResult, reconcile
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.prepare.keys import idempotency_key
from engine.scaleout.slots import LaneSubmitter, SharedSlots
from engine.submitter.constants import (
    REAPED_SENT_GRACE_S,
    RECONCILE_EVERY_S,
    SETTLE_ROUNDS,
    SETTLE_WAIT_MAX_S,
    WORKER_IDLE_S,
)
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.rate import Limiter, StartRefused
from engine.submitter.stats import PoolStats
from engine.submitter.workers import run_workers

log = logging.getLogger(__name__)

# Wake this long after a reconcile grace ends, so the next reconcile sees it over.
_WAKE_PAD_S = 0.5

_LEFT = (
    "SELECT status, count(*) FROM jobs "
    "WHERE status IN ('pending', 'submitting', 'uncertain') GROUP BY status"
)


class SharedControl(RunControl):
    """``RunControl`` whose pauses (a 429's Retry-After) every worker of the account
    keeps too: told to the database (``Fleet.pause``), where grants wait for it."""

    def __init__(self, max_wait_s: float, fleet: Fleet, account: str) -> None:
        super().__init__(max_wait_s)
        self._fleet = fleet
        self.account = account
        self._telling: set[asyncio.Task[None]] = set()

    def pause_for(self, seconds: float) -> None:
        super().pause_for(seconds)
        task = asyncio.create_task(self._tell(seconds))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _tell(self, seconds: float) -> None:
        try:
            await self._fleet.pause(self.account, seconds)
        except Exception as err:
            # This worker pauses anyway; a database that cannot be told stops it soon.
            log.warning("could not share a pause with the other workers: %s", err)


@dataclass
class LaneOptions:
    concurrency: int
    max_attempts: int
    grace_s: float
    #: Mark-ahead depth of the pool (engine.submitter.workers.marking_depth).
    depth: int
    #: Keep serving when the campaign is done (new jobs may be enqueued).
    follow: bool = False
    #: --max-rendering: the account's videos rendering at once, every worker together.
    max_rendering: int | None = None
    clock: Callable[[], float] = time.time


class Lane:
    """One campaign served by this worker: its ledger, writer, pool and reconcile."""

    def __init__(
        self,
        name: str,
        schema: str,
        ledger: Ledger,
        writer: BatchWriter,
        client: HeyGenClient,
        limiter: Limiter,
        control: SharedControl,
        account: str,
        fleet: Fleet,
        lease: Lease,
        stats: PoolStats,
        options: LaneOptions,
    ) -> None:
        self.name = name
        self.schema = schema
        self.ledger = ledger
        self.writer = writer
        self.control = control
        self.client = client
        self.limiter = limiter
        self.account = account
        self._fleet = fleet
        self._lease = lease
        self._stats = stats
        self._opts = options
        self._campaign_id = ledger.campaign_id
        slots = (
            None
            if options.max_rendering is None
            else SharedSlots(fleet, account, schema, options.max_rendering)
        )
        self.submitter = LaneSubmitter(
            schema,
            client,
            limiter,
            writer,
            control,
            options.max_attempts,
            stats,
            options.clock,
            client.service_clock_offset,
            client.has_answered,
            slots=slots,
        )
        self.found = 0
        self.absent = 0
        #: Reconciles in a row, with only uncertain jobs left, that settled none.
        self._fruitless = 0
        #: One reconcile at a time: the periodic one and the one at the end may meet.
        self._reconciling = asyncio.Lock()

    async def run(self) -> None:
        """Serve the campaign until it has nothing left to send (or the worker stops)."""
        await self.reconcile_round()
        # Claims wait here for the marking stage: no more than it marks at once, so a
        # worker holds few jobs that others could be sending (or that wait for its lease
        # to end, should it die).
        queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue(maxsize=self._opts.depth)
        meanwhile = asyncio.create_task(self._reconcile_meanwhile())
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed(queue))
                group.create_task(
                    run_workers(
                        queue,
                        self.submitter,
                        self._opts.concurrency,
                        self.control,
                        self._opts.depth,
                    )
                )
        finally:
            meanwhile.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await meanwhile

    async def _reconcile_meanwhile(self) -> None:
        """While the lane sends: reap and reconcile every ``RECONCILE_EVERY_S`` (or lease,
        if shorter), apart from the claims, which may wait long on a full queue: with
        every render slot held by a dead worker's jobs, only reconcile can name their
        videos so the slots free."""
        every = min(RECONCILE_EVERY_S, self._lease.lease_s)
        while not self.control.stopping:
            await self.control.sleep(every)
            if not self.control.stopping:
                await self.reconcile_round()

    async def reconcile_round(self) -> ReconcileResult | None:
        """Reap dead workers (their jobs in flight become uncertain), then, as the
        account's one reconciler of the moment, settle the campaign's uncertain jobs.
        None when another worker (or this lane, meanwhile) is reconciling."""
        if self._reconciling.locked():
            return None
        async with self._reconciling:
            return await self._reconcile_round()

    async def _reconcile_round(self) -> ReconcileResult | None:
        await self._fleet.reap(sent_grace_s=REAPED_SENT_GRACE_S)
        async with self._fleet.reconciler(self.account, self._lease) as mine:
            if not mine:
                return None
            await self.writer.flush()
            try:
                result = await reconcile(
                    self.ledger, self.client, self.limiter, self._opts.grace_s, self._opts.clock
                )
            except AbortRun as err:
                self.control.abort_run(err)
                return None
            except StartRefused:
                # The lease is lost or the database gone: the worker is stopping already.
                return None
        self.found += result.found
        self.absent += result.absent
        if result.problem is not None:
            log.warning("reconcile could not prove absence: %s", result.problem)
        return result

    async def _feed(self, queue: asyncio.Queue[SubmitItem | None]) -> None:
        await self._claim_until_done(queue)
        # Not in a finally: cancelled with the queue full, awaiting a put would hang.
        for _ in range(self._opts.concurrency):
            await queue.put(None)

    async def _claim_until_done(self, queue: asyncio.Queue[SubmitItem | None]) -> None:
        control = self.control
        while not control.stopping:
            room = max(queue.maxsize - queue.qsize(), 1)
            claimed = await self._fleet.claim(self._lease, self.schema, room)
            if claimed:
                await self._queue_claimed(queue, claimed)
                continue
            if await self._finished():
                return
            await control.sleep(WORKER_IDLE_S)

    async def _queue_claimed(
        self, queue: asyncio.Queue[SubmitItem | None], claimed: list[Claimed]
    ) -> None:
        """Hand claimed jobs to the pool; those it will not take go back, unclaimed."""
        held = [self._item(c) for c in claimed]
        try:
            while held and not self.control.stopping:
                await queue.put(held[0])
                held.pop(0)
        finally:
            if held:
                await self._release([item.key for item in held])

    async def _release(self, keys: list[str]) -> None:
        try:
            await self._fleet.release(self._lease, self.schema, keys)
        except Exception as err:
            # Retiring releases them too, and a reaper once the lease ends.
            log.debug("releasing %d claimed jobs: %s", len(keys), err)

    def _item(self, job: Claimed) -> SubmitItem:
        campaign = self._campaign_id
        return SubmitItem(
            job.key,
            json.loads(job.body),
            job.request_sha256,
            job.attempts,
            job.body,
            None,
            api_name(job.api),
            None if campaign is None else idempotency_key(campaign, job.key),
        )

    def left(self) -> dict[str, int]:
        """Jobs of the campaign not settled yet: pending, submitting, uncertain."""
        counts = dict.fromkeys(("pending", "submitting", "uncertain"), 0)
        for status, n in self.ledger.query(_LEFT):
            counts[str(status)] = int(n)
        return counts

    async def _finished(self) -> bool:
        """Nothing to claim now: whether the lane is done, after any wait for a grace.

        Jobs pending or in flight elsewhere may come back (a worker reaped, a claim
        released), so the lane waits for them. With only uncertain jobs left it
        reconciles, and waits out a grace that ends soon; it ends when none can be
        settled by waiting (they make the exit code 1), or with nothing left at all.
        """
        await self.writer.flush()
        left = self.left()
        if left["submitting"]:
            # A worker that died mid-request holds them until reaped.
            await self._fleet.reap(sent_grace_s=REAPED_SENT_GRACE_S)
        if left["pending"] or left["submitting"]:
            return False
        if not left["uncertain"]:
            return not self._opts.follow
        if self._opts.follow:
            # Serving on: the periodic rounds settle them.
            return False
        result = await self.reconcile_round()
        if result is None or result.absent or result.found:
            return False
        self._fruitless += 1
        now = self._opts.clock()
        ends = [end for end in result.grace_ends if end - now <= SETTLE_WAIT_MAX_S]
        if (
            not ends
            or result.problem is not None
            or max(ends) - now > self.control.max_wait_s
            or self._fruitless >= SETTLE_ROUNDS
        ):
            return True
        await self.control.sleep(max(min(ends) - now, 0.0) + _WAKE_PAD_S)
        return False
