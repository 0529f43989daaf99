"""The worker pool: each job marked durably, then sent under the limiter, retried safely."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, EngineError, RateLimited
from engine.ledger import statements
from engine.ledger.store import Status
from engine.ledger.writer import BatchWriter
from engine.prepare.estimate import estimated_seconds
from engine.submitter.constants import MARK_AHEAD_MAX, MARK_AHEAD_MIN, MARK_AHEAD_S
from engine.submitter.control import RunControl
from engine.submitter.rate import Rate
from engine.submitter.retry import Step, next_step, out_of_budget, retry_delay

log = logging.getLogger(__name__)


class VideoCreator(Protocol):
    async def create_video(self, body: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the ledger records of a job it does not hold yet, written with its mark."""

    line: int
    source: dict[str, Any]
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class SubmitItem:
    key: str
    body: dict[str, Any]
    sha256: str
    prior_attempts: int = 0
    #: The body serialised once, for the ledger and the request alike.
    body_json: str = ""
    #: Set when the ledger has no row for the job yet: marking it inserts one.
    new: NewJob | None = None

    @property
    def payload(self) -> str:
        return self.body_json or json.dumps(self.body, ensure_ascii=False)


@dataclass(slots=True)
class PoolStats:
    """Live counts for the progress display and the summary."""

    in_flight: int = 0
    submitted: int = 0
    failed: int = 0
    uncertain: int = 0
    first_send: float | None = None
    last_send: float | None = None
    #: Uncertain jobs whose reconcile grace the run is waiting out, and until when
    #: (``time.monotonic``); see engine.settling.
    settling: int = 0
    settling_until: float | None = None

    @property
    def done(self) -> int:
        """Jobs this run settled one way or another (not those handed back as pending)."""
        return self.submitted + self.failed + self.uncertain

    def record(self, status: Status) -> None:
        if status == "submitted":
            self.submitted += 1
        elif status == "failed":
            self.failed += 1
        elif status == "uncertain":
            self.uncertain += 1


class Submitter:
    """Sends one job to completion: submitted, failed, uncertain, or back to pending."""

    def __init__(
        self,
        client: VideoCreator,
        limiter: AsyncLimiter,
        writer: BatchWriter,
        control: RunControl,
        max_attempts: int,
        stats: PoolStats,
        clock: Callable[[], float] = time.time,
        service_offset: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._client = client
        self._service_offset = service_offset
        self._limiter = limiter
        self._writer = writer
        self._control = control
        self._max_attempts = max_attempts
        self._stats = stats
        self._clock = clock

    async def submit(self, item: SubmitItem) -> Status:
        """Mark one job ``submitting`` on disk, then send it."""
        try:
            await self.mark([item])
        except asyncio.CancelledError:
            self.release(item)
            raise
        return await self.send(item)

    async def mark(self, items: list[SubmitItem]) -> None:
        """Record ``items`` as ``submitting`` in one commit, before any of them is sent.

        From here on a crash leaves them to reconcile, never to a blind resend.
        """
        now = self._clock()
        # Kept with the attempt, so reconcile can place it on the service's clock even if
        # ours is stepped before then.
        offset = self._service_offset()
        work = []
        for item in items:
            callback_id = item.body.get("callback_id")
            callback = callback_id if isinstance(callback_id, str) else None
            new = item.new
            estimate = estimated_seconds(item.body)
            if new is None:
                work.append(
                    statements.mark_submitting(
                        item.key, item.payload, item.sha256, callback, now, offset, estimate
                    )
                )
            else:
                work.append(
                    statements.insert_submitting(
                        item.key,
                        new.line,
                        new.source,
                        new.fingerprint,
                        item.payload,
                        item.sha256,
                        callback,
                        now,
                        offset,
                        estimate,
                    )
                )
        await self._writer.write_durably(*work)

    def release(self, item: SubmitItem) -> None:
        """A marked job that will not be sent after all goes back to ``pending``."""
        self._finish(item.key, "pending", item.prior_attempts, None)

    def record_unsent(self, item: SubmitItem) -> None:
        """A job that will not be marked (held back by --limit, or a stop came first) is
        still recorded: ``pending``."""
        new = item.new
        if new is not None:
            self._writer.write(
                statements.insert_job(
                    item.key, new.line, "pending", new.source, item.sha256, None, new.fingerprint
                )
            )

    async def send(self, item: SubmitItem) -> Status:
        """Send a job already marked ``submitting`` until it settles or the run stops."""
        attempts = item.prior_attempts
        tries = 0
        in_request = False
        try:
            started = self._control.work_clock()
            while True:
                if not await self._start_allowed():
                    return self._finish(item.key, "pending", attempts, None)
                attempts += 1
                tries += 1
                self._note_send()
                in_request = True
                try:
                    video_id = await self._attempt(item.key, attempts, item.payload)
                except EngineError as err:
                    in_request = False
                    self._stats.in_flight -= 1
                    # The request may have reached the service as late as its error (the
                    # end of a timeout): a reconcile grace counts from here.
                    verdict = self._after_error(
                        err, item.key, attempts, tries, started, self._clock()
                    )
                    if not isinstance(verdict, float):
                        return verdict
                    await self._control.sleep(verdict)
                    continue
                in_request = False
                self._stats.in_flight -= 1
                self._writer.write(statements.mark_submitted(item.key, video_id, attempts))
                self._stats.record("submitted")
                return "submitted"
        except asyncio.CancelledError:
            # Cancelled mid-request the service may have the job; otherwise it never left
            # (the outcome is queued after the ``submitting`` mark, so it wins).
            if in_request:
                self._stats.in_flight -= 1
                self._finish(
                    item.key, "uncertain", attempts, "interrupted while in flight", self._clock()
                )
            else:
                self._finish(item.key, "pending", attempts, None)
            raise

    async def _attempt(self, key: str, attempt: int, payload: str) -> str:
        """One request; its start, latency and outcome noted for the campaign report."""
        started, tick = self._clock(), time.monotonic()
        try:
            video_id = await self._client.create_video(payload)
        except EngineError as err:
            latency = time.monotonic() - tick
            self._writer.note(statements.record_attempt(key, attempt, started, latency, err))
            raise
        latency = time.monotonic() - tick
        self._writer.note(statements.record_attempt(key, attempt, started, latency, None))
        return video_id

    async def _start_allowed(self) -> bool:
        """Wait out any pool-wide pause and take a place from the limiter; False on a stop.

        The limiter is taken for every attempt, so retries spend the rate too. A
        pause that began while this worker queued at the limiter sends it back to
        wait: starting anyway would release a burst the moment the pause ends.
        """
        control = self._control
        while True:
            if control.paused:
                await control.wait_if_paused()
            if self._limiter.has_capacity():
                # Room now: acquire() returns without suspending, so no stop can race it,
                # and the two tasks a cancellable wait needs are not worth their cost.
                await self._limiter.acquire()
            elif not await control.unless_stopped(self._limiter.acquire):
                return False
            # Checked after the limiter's wait: a stop or a 429 may have come meanwhile.
            if control.stopping:
                return False
            if not control.paused:
                return True

    def _note_send(self) -> None:
        stats = self._stats
        stats.in_flight += 1
        now = time.monotonic()
        if stats.first_send is None:
            stats.first_send = now
        stats.last_send = now

    def _after_error(
        self, err: EngineError, key: str, attempts: int, tries: int, started: float, ended: float
    ) -> Status | float:
        """The job's final status after ``err`` (which came back at ``ended``), or the
        seconds this worker waits to retry."""
        step = next_step(err)
        if step is Step.ABORT:
            assert isinstance(err, AbortRun)
            self._control.abort_run(err)
            if err.maybe_sent:
                return self._finish(key, "uncertain", attempts, str(err), ended)
            # A refused key or an empty account created nothing: the job waits for the next run.
            return self._finish(key, "pending", attempts, str(err))
        if step is Step.UNCERTAIN:
            return self._finish(key, "uncertain", attempts, str(err), ended)
        if step is Step.FAILED:
            return self._finish(key, "failed", attempts, str(err))
        asked = err.retry_after if isinstance(err, RateLimited) else None
        if asked is not None and not self._control.service_wait(asked, self._clock()):
            # Longer than --max-wait: the run stops, and the job waits for the next one.
            return self._finish(key, "pending", attempts, None)
        delay = retry_delay(err, attempts)
        # A 429's pause is the service's, not the job's fault: it spends none of its time.
        own_delay = 0.0 if isinstance(err, RateLimited) else delay
        elapsed = self._control.work_clock() - started
        if out_of_budget(tries, self._max_attempts, elapsed, own_delay):
            return self._finish(key, "failed", attempts, f"gave up after {tries} attempts: {err}")
        if self._control.stopping:
            return self._finish(key, "pending", attempts, None)
        log.debug("job %s attempt %d: %s; retrying in %.2fs", key, attempts, err, delay)
        if isinstance(err, RateLimited):
            # The service is over its limit for everyone: hold the whole pool back, and let
            # the limiter release the workers one by one when the pause ends.
            self._control.pause_for(delay)
            return 0.0
        return float(delay)

    def _finish(
        self,
        key: str,
        status: Status,
        attempts: int,
        error: str | None,
        sent_at: float | None = None,
    ) -> Status:
        self._writer.write(statements.mark_outcome(key, status, attempts, error, sent_at))
        self._stats.record(status)
        return status


def marking_depth(rate: Rate, concurrency: int) -> int:
    """How many jobs the marking stage keeps marked ahead of the workers.

    ``rate`` per second * ``MARK_AHEAD_S``, within ``MARK_AHEAD_MIN`` and
    ``MARK_AHEAD_MAX`` * ``concurrency``: at the least, one commit releases many
    sends; at the most, a killed run leaves few marked-but-unsent jobs to reconcile.
    """
    wanted = math.ceil(rate.per_second * MARK_AHEAD_S)
    return min(max(wanted, MARK_AHEAD_MIN * concurrency), MARK_AHEAD_MAX * concurrency)


async def run_workers(
    queue: asyncio.Queue[SubmitItem | None],
    submitter: Submitter,
    concurrency: int,
    control: RunControl,
    depth: int | None = None,
) -> None:
    """Drain ``queue`` with ``concurrency`` workers until it has yielded one ``None`` per worker.

    A marking stage sits between ``queue`` and the workers: it keeps up to
    ``depth`` jobs (default ``2 * concurrency``, see ``marking_depth``) marked
    ``submitting`` queued for the workers, besides those they hold, and marks the
    next half of that while they send the other half. So one commit releases many
    sends at any rate instead of one fsync per job, and the workers never wait on
    a commit. After a stop, jobs not yet sent go back to ``pending``.
    """
    ready: asyncio.Queue[SubmitItem | None] = asyncio.Queue()
    taken = asyncio.Event()
    depth = depth or MARK_AHEAD_MIN * concurrency
    low_water = depth // 2

    async def marker() -> None:
        ends = 0
        while ends < concurrency:
            while ready.qsize() > low_water:
                taken.clear()
                await taken.wait()
            group: list[SubmitItem] = []
            want = depth - ready.qsize()
            while len(group) < want and ends < concurrency:
                if group and queue.empty():
                    break
                item = await queue.get()
                if item is None:
                    ends += 1
                else:
                    group.append(item)
            if control.stopping:
                for item in group:
                    submitter.record_unsent(item)
                continue
            if not group:
                continue
            try:
                await submitter.mark(group)
            except asyncio.CancelledError:
                for item in group:
                    submitter.release(item)
                raise
            for item in group:
                ready.put_nowait(item)
        for _ in range(concurrency):
            ready.put_nowait(None)

    async def worker() -> None:
        while True:
            item = await ready.get()
            taken.set()
            if item is None:
                return
            if control.stopping:
                submitter.release(item)
            else:
                await submitter.send(item)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(marker())
            for _ in range(concurrency):
                group.create_task(worker())
    finally:
        # Cancelled (a stop whose grace ran out): marked jobs no worker took are unsent.
        while not ready.empty():
            if (left := ready.get_nowait()) is not None:
                submitter.release(left)
