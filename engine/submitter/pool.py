"""The worker pool: each job marked durably, then sent under the limiter, retried safely."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from engine.errors import (
    AbortRun,
    ConnectFailed,
    EngineError,
    RateLimited,
    RequestInProgress,
    ServerError,
    ServiceUnreachable,
)
from engine.ledger import render_writes, statements
from engine.ledger.store import Status
from engine.ledger.writer import BatchWriter
from engine.prepare.estimate import estimated_seconds
from engine.submitter.control import RunControl
from engine.submitter.items import Creators, SlotGate, SubmitItem, VideoCreator
from engine.submitter.rate import Limiter, StartRefused
from engine.submitter.retry import (
    MAYBE_MADE,
    Step,
    may_have_made,
    next_step,
    out_of_budget,
    retry_delay,
)
from engine.submitter.stats import PoolStats

log = logging.getLogger(__name__)


class Submitter:
    """Sends one job to completion: submitted, failed, uncertain, or back to pending."""

    def __init__(
        self,
        client: Creators,
        limiter: Limiter,
        writer: BatchWriter,
        control: RunControl,
        max_attempts: int,
        stats: PoolStats,
        clock: Callable[[], float] = time.time,
        service_offset: Callable[[], float | None] = lambda: None,
        reachable: Callable[[], bool] = lambda: True,
        address_given_by: str = "",
        *,
        slots: SlotGate | None = None,
    ) -> None:
        self._client = client
        self._slots = slots
        #: Whether the service ever answered this run; ``address_given_by`` is
        #: ``ServiceUnreachable.given_by``.
        self._reachable = reachable
        self._given_by = address_given_by
        self._service_offset = service_offset
        self._limiter = limiter
        self._writer = writer
        self._control = control
        self._max_attempts = max_attempts
        self._stats = stats
        self._clock = clock

    async def submit(self, item: SubmitItem) -> Status:
        """Take a render slot (when the run has them), mark one job ``submitting`` on
        disk, then send it."""
        if not await self.hold_slot():
            self.record_unsent(item)
            return "pending"
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
                        item.key,
                        item.payload,
                        item.sha256,
                        callback,
                        now,
                        offset,
                        item.api,
                        estimate,
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
                        item.api,
                        estimate,
                    )
                )
        await self._writer.write_durably(*work)

    async def hold_slot(self) -> bool:
        """Wait for a render slot for the next job to mark (when the run has slots);
        False when the run stops first. Taken before the mark, so a kill never leaves
        jobs marked ``submitting`` that were only waiting for a slot."""
        return self._slots is None or await self._slots.acquire(self._control)

    @property
    def slot_free(self) -> bool:
        """Whether ``hold_slot`` would return at once."""
        return self._slots is None or self._slots.free

    def drop_slot(self) -> None:
        """Give back a slot held for a job that will not be sent."""
        if self._slots is not None:
            self._slots.release()

    def release(self, item: SubmitItem) -> None:
        """A marked job that will not be sent after all goes back to ``pending``, and
        its render slot with it."""
        self.drop_slot()
        self._finish(item.key, "pending", item.prior_attempts, None)

    def record_unsent(self, item: SubmitItem) -> None:
        """A job that will not be marked (held back by --limit, or a stop came first) is
        still recorded: ``pending``."""
        new = item.new
        if new is not None:
            self._writer.write(
                statements.insert_job(
                    item.key,
                    new.line,
                    "pending",
                    new.source,
                    item.sha256,
                    None,
                    new.fingerprint,
                    item.api,
                )
            )

    async def send(self, item: SubmitItem) -> Status:
        """Send a job already marked ``submitting`` (holding a render slot, when the run
        has them) until it settles or the run stops."""
        slots = self._slots
        if slots is None:
            return await self._send(item)
        status: Status | None = None
        try:
            status = await self._send(item)
            return status
        finally:
            if status != "submitted":
                slots.release()

    async def _send(self, item: SubmitItem) -> Status:
        attempts = item.prior_attempts
        tries = 0
        refusals = 0
        in_request = False
        api = self._client.for_api(item.api)
        idempotent = api.features.idempotent_create
        #: When an earlier attempt may have made the video (retried with its key, which
        #: only a replay may settle): a job stopped after it is uncertain, never pending.
        made_by: float | None = None
        try:
            started = self._control.work_clock()
            while True:
                if not await self._start_allowed():
                    return self._unsent(item.key, attempts, made_by)
                attempts += 1
                tries += 1
                self._note_send()
                in_request = True
                try:
                    video_id = await self._attempt(api, item, attempts)
                except EngineError as err:
                    in_request = False
                    self._stats.in_flight -= 1
                    # The request may have reached the service as late as its error (the
                    # end of a timeout): a reconcile grace counts from here.
                    ended = self._clock()
                    if isinstance(err, RateLimited):
                        # "Not yet" (CONTRACT 5): it spends none of the job's attempts.
                        attempts -= 1
                        tries -= 1
                        refusals += 1
                        verdict = self._not_yet(err, item.key, attempts, refusals, made_by)
                    else:
                        if isinstance(err, RequestInProgress):
                            # The first request with this key is still being processed:
                            # not this job's fault, so it spends no attempt.
                            attempts -= 1
                            tries -= 1
                        verdict = self._after_error(
                            err, item.key, attempts, tries, started, ended, idempotent, made_by
                        )
                    if not isinstance(verdict, float):
                        return verdict
                    if idempotent and may_have_made(err):
                        made_by = ended
                    await self._control.sleep(verdict)
                    continue
                in_request = False
                self._stats.in_flight -= 1
                self._writer.write(statements.mark_submitted(item.key, video_id, attempts))
                self._stats.record("submitted")
                if self._slots is not None:
                    callback_id = item.body.get("callback_id")
                    callback = callback_id if isinstance(callback_id, str) else None
                    self._slots.started(item.key, video_id, callback, item.api)
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
                self._unsent(item.key, attempts, made_by)
            raise

    def _unsent(self, key: str, attempts: int, made_by: float | None) -> Status:
        """A job the run stops before it settles: pending, unless an earlier attempt may
        have made its video (then uncertain, for a replay of its key)."""
        if made_by is None:
            return self._finish(key, "pending", attempts, None)
        return self._finish(key, "uncertain", attempts, MAYBE_MADE, made_by)

    async def _attempt(self, api: VideoCreator, item: SubmitItem, attempt: int) -> str:
        """One request; its start, latency and outcome noted for the campaign report."""
        started, tick = self._clock(), time.monotonic()
        try:
            video_id = await api.create_video(item.payload, idempotency_key=item.idempotency_key)
        except EngineError as err:
            latency = time.monotonic() - tick
            self._writer.note(
                render_writes.record_attempt(item.key, attempt, started, latency, err)
            )
            raise
        latency = time.monotonic() - tick
        self._writer.note(render_writes.record_attempt(item.key, attempt, started, latency, None))
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
            try:
                if self._limiter.has_capacity():
                    # Room now: acquire() returns without suspending, so no stop can race
                    # it, and the two tasks a cancellable wait needs are not worth their cost.
                    await self._limiter.acquire()
                elif not await control.unless_stopped(self._limiter.acquire):
                    return False
            except StartRefused:
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
        self,
        err: EngineError,
        key: str,
        attempts: int,
        tries: int,
        started: float,
        ended: float,
        idempotent: bool = False,
        made_by: float | None = None,
    ) -> Status | float:
        """The job's final status after ``err`` (which came back at ``ended``), or the
        seconds this worker waits to retry; ``idempotent``: see ``next_step``;
        ``made_by``: see ``send``."""
        if isinstance(err, ConnectFailed) and not self._reachable():
            # Not one request of the run was answered: the address is wrong, not the job,
            # and this try sent nothing, so it costs the job no attempt.
            self._control.abort_run(ServiceUnreachable(str(err), self._given_by))
            return self._unsent(key, attempts - 1, made_by)
        step = next_step(err, idempotent=idempotent)
        if idempotent and may_have_made(err):
            made_by = ended
        if step is Step.ABORT:
            assert isinstance(err, AbortRun)
            self._control.abort_run(err)
            if err.maybe_sent or made_by is not None:
                return self._finish(key, "uncertain", attempts, str(err), ended)
            # A refused key or an empty account created nothing: the job waits for the next run.
            return self._finish(key, "pending", attempts, str(err))
        if step is Step.UNCERTAIN:
            return self._finish(key, "uncertain", attempts, str(err), ended)
        if step is Step.FAILED:
            if made_by is not None:
                # An earlier attempt may have made the video: a refusal of this one (a
                # proxy's 404, a key forgotten) proves nothing of it. Never failed, so
                # --retry-failed can never send it a second time.
                return self._finish(key, "uncertain", attempts, f"{MAYBE_MADE}; {err}", made_by)
            return self._finish(key, "failed", attempts, str(err))
        delay = retry_delay(err, attempts)
        asked = err.retry_after if isinstance(err, ServerError) else None
        if asked is not None and not self._control.service_wait(asked, self._clock()):
            # A 5xx asking for a wait beyond --max-wait (maintenance): the run stops with
            # exit 75, and the job waits for the next one.
            return self._unsent(key, attempts, made_by)
        elapsed = self._control.work_clock() - started
        # A wait the service asked for is its own, not this job's: it spends no budget.
        own_delay = 0.0 if asked is not None else delay
        if out_of_budget(tries, self._max_attempts, elapsed, own_delay):
            gave_up = f"gave up after {tries} attempts: {err}"
            if made_by is not None:
                return self._finish(key, "uncertain", attempts, gave_up, made_by)
            if isinstance(err, ConnectFailed):
                # The service answered earlier and now cannot be reached at all: the run's
                # problem, not the job's (nothing of it was sent). The run stops; the job
                # waits for the next one.
                self._control.abort_run(
                    ServiceUnreachable(gave_up, self._given_by, answered_before=True)
                )
                return self._unsent(key, attempts, made_by)
            return self._finish(key, "failed", attempts, gave_up)
        if self._control.stopping:
            return self._unsent(key, attempts, made_by)
        log.debug("job %s attempt %d: %s; retrying in %.2fs", key, attempts, err, delay)
        return float(delay)

    def _not_yet(
        self, err: RateLimited, key: str, attempts: int, refusals: int, made_by: float | None
    ) -> Status | float:
        """A 429: the service is at its limit (requests, or renders in progress) for
        everyone. The whole pool pauses for its Retry-After (else a backoff on this job's
        ``refusals``), and the limiter lets the workers out one by one when it ends. The
        job never fails by it; a stop meanwhile (or a wait beyond --max-wait, which stops
        the run) leaves it ``pending`` (``uncertain`` when an earlier attempt may have made
        its video: ``made_by``, see ``send``). Returns the status, or 0.0 to try again."""
        asked = err.retry_after
        if asked is not None and not self._control.service_wait(asked, self._clock()):
            return self._unsent(key, attempts, made_by)
        if self._control.stopping:
            return self._unsent(key, attempts, made_by)
        delay = retry_delay(err, refusals)
        stats = self._stats
        stats.refusals += 1
        until = time.monotonic() + delay
        stats.service_wait_until = max(stats.service_wait_until or 0.0, until)
        log.debug("job %s: %s; the pool waits %.2fs", key, err, delay)
        self._control.pause_for(delay)
        return 0.0

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
