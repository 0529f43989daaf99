"""Fill in render progress (status, URLs) for submitted jobs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, EngineError
from engine.ledger import store
from engine.ledger.store import Ledger
from engine.request.responses import VideoStatus

_FINAL = frozenset({"completed", "failed"})


class StatusReader(Protocol):
    async def video_status(self, video_id: str) -> VideoStatus: ...


@dataclass(slots=True)
class PollResult:
    checked: int = 0
    completed: int = 0
    failed: int = 0
    rendering: int = 0
    errors: int = 0


def _error_text(status: VideoStatus) -> str | None:
    error = status.error
    if error is None:
        return None
    parts = [p for p in (error.code, error.message, error.detail) if p]
    return "render failed: " + (": ".join(str(p) for p in parts) or "no reason given")


async def poll_once(
    ledger: Ledger, client: StatusReader, limiter: AsyncLimiter, concurrency: int = 8
) -> PollResult:
    jobs = ledger.unfinished_renders()
    result = PollResult()
    semaphore = asyncio.Semaphore(concurrency)
    writes = []

    async def check(key: str, video_id: str) -> None:
        async with semaphore, limiter:
            try:
                status = await client.video_status(video_id)
            except AbortRun:
                raise
            except EngineError:
                result.errors += 1
                return
        result.checked += 1
        state = "pending" if status.status == "waiting" else status.status
        if state == "completed":
            result.completed += 1
        elif state == "failed":
            result.failed += 1
        else:
            result.rendering += 1
        writes.append(
            store.render_update(
                key, state, status.video_url, status.thumbnail_url, _error_text(status)
            )
        )

    async with asyncio.TaskGroup() as group:
        for job in jobs:
            assert job.video_id is not None
            group.create_task(check(job.key, job.video_id))
    if writes:
        ledger.transaction(writes)
    return result
