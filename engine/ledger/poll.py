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
from typing import Literal

from aiolimiter import AsyncLimiter

from engine.api.port import ApiRouter, RenderStatus, api_name
from engine.errors import AbortRun, BadRequest, EngineError
from engine.ledger import render_writes, statements
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger

log = logging.getLogger(__name__)

#: (key, video_id, callback_id, api) of a submitted job whose render is not final.
_Job = tuple[str, str, str | None, str]

# Jobs read from the ledger per page, and answers committed per transaction.
_PAGE = 500
_COMMIT_EVERY = 200


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


def render_extras(status: RenderStatus) -> render_writes.RenderExtras:
    """What the ledger keeps of a status answer beyond its state, URLs and error."""
    return render_writes.RenderExtras(
        status.video_page_url,
        status.subtitle_url,
        status.failure_code,
        status.failure_message,
        status.duration,
    )


def render_error(status: RenderStatus) -> str | None:
    """A failed render's reason as the ledger's ``error`` keeps it; None when there is none."""
    parts = [p for p in (status.failure_code, status.failure_message) if p]
    return "render failed: " + ": ".join(parts) if parts else None


RenderOutcome = Literal["completed", "failed", "rendering", "not_theirs"]


def render_outcome(
    key: str, video_id: str, callback_id: str | None, status: RenderStatus
) -> tuple[RenderOutcome, Statement]:
    """What a status answer about job ``key``'s video means, and the ledger write that
    records it: the render's state, URLs and a failed render's reason; or, when the
    status names another callback_id, the job back to ``uncertain``."""
    owner = status.callback_id
    if owner is not None and callback_id is not None and owner != callback_id:
        # The status's callback_id proves whose video it is, above what the answer said.
        log.warning("video %s of job %s was made for %r", video_id, key, owner)
        return "not_theirs", statements.not_its_video(key, video_id, owner)
    state = status.state
    update = render_writes.render_update(
        key,
        state,
        status.video_url,
        status.thumbnail_url,
        render_error(status),
        render_extras(status),
    )
    if state in ("completed", "failed"):
        return state, update
    return "rendering", update


class _Round:
    """One pass over every unfinished render in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        client: ApiRouter,
        limiter: AsyncLimiter,
        concurrency: int,
        on_check: Callable[[PollResult], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._on_check = on_check
        self._client = client
        self._limiter = limiter
        self._concurrency = concurrency
        self._queue: asyncio.Queue[list[_Job] | None] = asyncio.Queue(concurrency * 2)
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
        """Jobs one at a time, or in groups of up to ``bulk_status_max`` where their API
        answers many in one call (v3: 100), so a campaign costs a hundredth of the calls."""
        after = ""
        groups: dict[str, list[_Job]] = {}
        while page := self._ledger.renders_to_check(after, _PAGE):
            for job in page:
                most = self._client.for_api(api_name(job[3])).features.bulk_status_max
                group = groups.setdefault(job[3], [])
                group.append(job)
                if len(group) >= max(most, 1):
                    await self._queue.put(groups.pop(job[3]))
            after = page[-1][0]
        for group in groups.values():
            await self._queue.put(group)
        # Not in a finally: after a failure the task group cancels the workers, and a
        # cancelled feeder waiting on a full queue would wait forever.
        for _ in range(self._concurrency):
            await self._queue.put(None)

    async def _work(self) -> None:
        while (group := await self._queue.get()) is not None:
            if len(group) == 1:
                await self._check(*group[0])
            else:
                await self._check_many(group)
            if self._on_check is not None:
                self._on_check(self.result)

    async def _check_many(self, group: list[_Job]) -> None:
        """One bulk status call for ``group`` (one API); a completed render's URLs come
        only with its own status, so each completed one is then asked about alone."""
        api = self._client.for_api(api_name(group[0][3]))
        async with self._limiter:
            try:
                found = await api.video_statuses([job[1] for job in group])
            except AbortRun:
                raise
            except EngineError as err:
                self.result.errors += len(group)
                log.debug("bulk status of %d videos: %s; will ask again", len(group), err)
                return
        for job in group:
            status = found.get(job[1])
            if status is None:
                self.result.missing += 1
                log.warning("video %s of job %s is unknown to the service", job[1], job[0])
            elif status.state == "completed":
                await self._check(*job)
            else:
                self._tally(job[0], job[1], job[2], status)

    async def _check(self, key: str, video_id: str, callback_id: str | None, api: str) -> None:
        result = self.result
        async with self._limiter:
            try:
                status = await self._client.for_api(api_name(api)).video_status(video_id)
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
        self._tally(key, video_id, callback_id, status)

    def _tally(
        self, key: str, video_id: str, callback_id: str | None, status: RenderStatus
    ) -> None:
        result = self.result
        result.checked += 1
        outcome, statement = render_outcome(key, video_id, callback_id, status)
        if outcome == "not_theirs":
            result.not_theirs += 1
        elif outcome == "completed":
            result.completed += 1
        elif outcome == "failed":
            result.failed += 1
        else:
            result.rendering += 1
        self._write(statement)

    def _write(self, statement: Statement) -> None:
        self._writes.append(statement)
        if len(self._writes) >= _COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        if self._writes:
            writes, self._writes = self._writes, []
            self._ledger.transaction(writes)


async def poll_once(
    ledger: Ledger,
    client: ApiRouter,
    limiter: AsyncLimiter,
    concurrency: int = 8,
    on_check: Callable[[PollResult], None] | None = None,
) -> PollResult:
    """Ask once about every submitted job whose render is not final; record the answers.

    ``on_check`` is given the round's counts so far after each job is asked about.
    """
    return await _Round(ledger, client, limiter, max(concurrency, 1), on_check).run()


async def poll_until_done(
    ledger: Ledger,
    client: ApiRouter,
    limiter: AsyncLimiter,
    interval_s: float,
    *,
    concurrency: int = 8,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_round: Callable[[PollResult], None] | None = None,
    on_check: Callable[[PollResult], None] | None = None,
) -> PollResult:
    """Poll in rounds ``interval_s`` apart until every render is completed or failed;
    returns the completed and failed counted over all rounds.

    Videos the service does not know are reported, not waited for: they would keep
    the loop going forever.
    """
    total = PollResult()
    while True:
        result = await poll_once(ledger, client, limiter, concurrency, on_check)
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
