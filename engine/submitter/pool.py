"""The worker pool: each job marked durably, then sent under the limiter, retried safely."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, EngineError, RateLimited, TransportError
from engine.ledger import store
from engine.ledger.store import Status
from engine.ledger.writer import BatchWriter
from engine.submitter.constants import MAX_TOTAL_RETRY_S
from engine.submitter.control import RunControl
from engine.submitter.retry import retry_delay, should_retry

log = logging.getLogger(__name__)


class VideoCreator(Protocol):
    async def create_video(self, body: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class SubmitItem:
    key: str
    body: dict[str, Any]
    sha256: str
    prior_attempts: int = 0


@dataclass(slots=True)
class PoolStats:
    """Live counts for the progress display and the summary."""

    in_flight: int = 0
    submitted: int = 0
    failed: int = 0
    uncertain: int = 0
    returned: int = 0
    first_send: float | None = None
    last_send: float | None = None

    def record(self, status: Status) -> None:
        if status == "submitted":
            self.submitted += 1
        elif status == "failed":
            self.failed += 1
        elif status == "uncertain":
            self.uncertain += 1
        else:
            self.returned += 1


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
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._writer = writer
        self._control = control
        self._max_attempts = max_attempts
        self._stats = stats
        self._clock = clock

    async def submit(self, item: SubmitItem) -> Status:
        body_json = json.dumps(item.body, ensure_ascii=False)
        callback_id = item.body.get("callback_id")
        await self._writer.write_durably(
            store.mark_submitting(
                item.key,
                body_json,
                item.sha256,
                callback_id if isinstance(callback_id, str) else None,
                self._clock(),
            )
        )
        attempts = item.prior_attempts
        started = self._clock()
        in_request = False
        try:
            while True:
                await self._control.wait_if_paused()
                async with self._limiter:
                    # Checked after the limiter's wait: a stop may have come meanwhile.
                    if self._control.stopping:
                        return self._finish(item.key, "pending", attempts, None)
                    attempts += 1
                    in_request = True
                    self._stats.in_flight += 1
                    now = time.monotonic()
                    self._stats.first_send = self._stats.first_send or now
                    self._stats.last_send = now
                try:
                    video_id = await self._client.create_video(item.body)
                except EngineError as err:
                    outcome = self._after_error(err, item.key, attempts, started)
                    if outcome is not None:
                        return outcome
                    await asyncio.sleep(retry_delay(err, attempts))
                    continue
                finally:
                    in_request = False
                    self._stats.in_flight -= 1
                self._writer.write(store.mark_submitted(item.key, video_id, attempts))
                self._stats.record("submitted")
                return "submitted"
        except asyncio.CancelledError:
            # Cancelled mid-request the service may have the job; otherwise it never left.
            status: Status = "uncertain" if in_request else "pending"
            self._finish(item.key, status, attempts, "interrupted" if in_request else None)
            raise

    def _after_error(
        self, err: EngineError, key: str, attempts: int, started: float
    ) -> Status | None:
        """The job's final status after ``err``, or None to try again."""
        if isinstance(err, AbortRun):
            self._control.abort_run(err)
            # A refused key or empty account created nothing: the job waits for the next run.
            return self._finish(key, "pending", attempts, str(err))
        if isinstance(err, RateLimited):
            self._control.pause_for(retry_delay(err, attempts))
        if not should_retry(err):
            if isinstance(err, TransportError) and err.maybe_sent:
                return self._finish(key, "uncertain", attempts, str(err))
            return self._finish(key, "failed", attempts, str(err))
        out_of_time = self._clock() - started >= MAX_TOTAL_RETRY_S
        if attempts >= self._max_attempts or out_of_time:
            return self._finish(
                key, "failed", attempts, f"gave up after {attempts} attempts: {err}"
            )
        if self._control.stopping:
            return self._finish(key, "pending", attempts, None)
        log.debug("job %s attempt %d: %s; retrying", key, attempts, err)
        return None

    def _finish(self, key: str, status: Status, attempts: int, error: str | None) -> Status:
        self._writer.write(store.mark_outcome(key, status, attempts, error))
        self._stats.record(status)
        return status


async def run_workers(
    queue: asyncio.Queue[SubmitItem | None],
    submitter: Submitter,
    concurrency: int,
    control: RunControl,
) -> None:
    """Drain ``queue`` with ``concurrency`` workers until a ``None`` per worker or a stop."""

    async def worker() -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if control.stopping:
                continue  # left pending in the ledger for the next run
            await submitter.submit(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
