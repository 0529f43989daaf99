"""Fill in render progress (status, URLs, a failed render's reason) for submitted jobs.

A fixed set of workers drains a queue the ledger is paged into, so a million
jobs cost a million status calls under the limiter, not a million tasks; the
answers are committed in groups as they come, so an interrupted poll keeps
what it learnt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, BadRequest, EngineError
from engine.ledger import statements
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger
from engine.request.responses import VideoStatus

log = logging.getLogger(__name__)

# Jobs read from the ledger per page, and answers committed per transaction.
_PAGE = 500
_COMMIT_EVERY = 200


class StatusReader(Protocol):
    async def video_status(self, video_id: str) -> VideoStatus: ...


@dataclass(slots=True)
class PollResult:
    checked: int = 0
    completed: int = 0
    failed: int = 0
    rendering: int = 0
    #: Could not be checked this time (timeouts, 5xx, 429): worth asking again.
    errors: int = 0
    #: The service does not know the video (a 4xx such as 404): asking again will not help.
    missing: int = 0
    #: The video's status names another callback_id: the job is uncertain again.
    not_theirs: int = 0

    @property
    def done(self) -> bool:
        """Nothing left that a later round could learn more about."""
        return self.rendering == 0 and self.errors == 0


def _error_text(status: VideoStatus) -> str | None:
    error = status.error
    if error is None:
        return None
    parts = [str(p) for p in (error.code, error.message, error.detail) if p]
    return "render failed: " + (": ".join(parts) or "no reason given")


class _Round:
    """One pass over every unfinished render in the ledger."""

    def __init__(
        self, ledger: Ledger, client: StatusReader, limiter: AsyncLimiter, concurrency: int
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._limiter = limiter
        self._concurrency = concurrency
        self._queue: asyncio.Queue[tuple[str, str, str | None] | None] = asyncio.Queue(
            concurrency * 2
        )
        self._writes: list[Statement] = []
        self.result = PollResult()

    async def run(self) -> PollResult:
        abort: AbortRun | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed())
                for _ in range(self._concurrency):
                    group.create_task(self._work())
        except* AbortRun as errors:
            abort = errors.exceptions[0]  # type: ignore[assignment]
        finally:
            self._commit()
        if abort is not None:
            raise abort
        return self.result

    async def _feed(self) -> None:
        after = ""
        while page := self._ledger.renders_to_check(after, _PAGE):
            for job in page:
                await self._queue.put(job)
            after = page[-1][0]
        # Not in a finally: after a failure the task group cancels the workers, and a
        # cancelled feeder waiting on a full queue would wait forever.
        for _ in range(self._concurrency):
            await self._queue.put(None)

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            await self._check(*job)

    async def _check(self, key: str, video_id: str, callback_id: str | None) -> None:
        result = self.result
        async with self._limiter:
            try:
                status = await self._client.video_status(video_id)
            except AbortRun:
                raise
            except BadRequest as err:
                result.missing += 1
                log.warning("video %s of job %s cannot be checked: %s", video_id, key, err)
                return
            except EngineError as err:
                result.errors += 1
                log.debug("video %s of job %s: %s; will ask again", video_id, key, err)
                return
        result.checked += 1
        owner = status.callback_id
        if owner is not None and callback_id is not None and owner != callback_id:
            # The status's callback_id proves whose video it is, above what the answer said.
            result.not_theirs += 1
            log.warning("video %s of job %s was made for %r", video_id, key, owner)
            self._write(statements.not_its_video(key, video_id, owner))
            return
        state = "pending" if status.status == "waiting" else status.status
        if state == "completed":
            result.completed += 1
        elif state == "failed":
            result.failed += 1
        else:
            result.rendering += 1
        self._write(
            statements.render_update(
                key,
                state,
                status.video_url,
                status.thumbnail_url,
                _error_text(status),
                status.duration,
            )
        )

    def _write(self, statement: Statement) -> None:
        self._writes.append(statement)
        if len(self._writes) >= _COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        if self._writes:
            writes, self._writes = self._writes, []
            self._ledger.transaction(writes)


async def poll_once(
    ledger: Ledger, client: StatusReader, limiter: AsyncLimiter, concurrency: int = 8
) -> PollResult:
    """Ask once about every submitted job whose render is not final; record the answers."""
    return await _Round(ledger, client, limiter, max(concurrency, 1)).run()


async def poll_until_done(
    ledger: Ledger,
    client: StatusReader,
    limiter: AsyncLimiter,
    interval_s: float,
    *,
    concurrency: int = 8,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_round: Callable[[PollResult], None] | None = None,
) -> PollResult:
    """Poll in rounds ``interval_s`` apart until every render is completed or failed;
    returns the completed and failed counted over all rounds.

    Videos the service does not know are reported, not waited for: they would keep
    the loop going forever.
    """
    total = PollResult()
    while True:
        result = await poll_once(ledger, client, limiter, concurrency)
        total.checked += result.checked
        total.completed += result.completed
        total.failed += result.failed
        # What is still open is whatever the latest round left open.
        total.not_theirs += result.not_theirs
        total.rendering, total.errors, total.missing = (
            result.rendering,
            result.errors,
            result.missing,
        )
        if total.done:
            return total
        if on_round is not None:
            on_round(replace(total))
        await sleep(interval_s)
