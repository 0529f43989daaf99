"""Settle ``uncertain`` jobs by asking the service what it actually created.

The service has no look-up by callback_id, so: list the videos created since
the earliest uncertain attempt (newest first, paged), skip those the ledger
already knows, and read each remaining one's status, whose ``callback_id``
names the job it belongs to. A job found becomes ``submitted``; a job not found
once the listing reaches back past its attempt, and its grace period is over,
becomes ``pending`` and may be sent again. Anything else stays ``uncertain``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, EngineError
from engine.ledger import store
from engine.ledger.store import JobRecord, Ledger
from engine.request.responses import VideoListItem, VideoStatus

log = logging.getLogger(__name__)

# Clocks of this machine and the service may disagree by this much.
CLOCK_SKEW_S = 300.0
# How long the real service may take before a created video shows in its list.
DEFAULT_GRACE_S = 120.0
# Never page through more than this many videos looking for a handful of jobs.
MAX_LISTED = 200_000


class VideoLister(Protocol):
    async def video_list(
        self, token: str | None = None, limit: int = 100
    ) -> tuple[list[VideoListItem], str | None]: ...

    async def video_status(self, video_id: str) -> VideoStatus: ...


@dataclass(slots=True)
class ReconcileResult:
    found: int = 0
    absent: int = 0
    still_uncertain: int = 0


async def reconcile(
    ledger: Ledger,
    client: VideoLister,
    limiter: AsyncLimiter,
    grace_s: float = DEFAULT_GRACE_S,
    clock: Callable[[], float] = time.time,
) -> ReconcileResult:
    """Settle every ``uncertain`` job in ``ledger``; writes are committed before returning.

    Only a refused key (AbortRun) or a ledger that cannot be written escapes; any
    other failure to list or check leaves the jobs concerned ``uncertain``, since
    absence is then not proven.
    """
    jobs = ledger.with_status("uncertain")
    result = ReconcileResult()
    if not jobs:
        return result
    by_callback = _claimable(jobs)
    since = min((j.attempted_at or 0.0) for j in jobs) - CLOCK_SKEW_S
    # Grace runs to the listing's start, not its end: a video created while the
    # pages are read may be missed by them.
    listed_at = clock()
    found, complete = await _search(ledger, client, limiter, by_callback, since)

    writes = []
    for job in jobs:
        if job.key in found:
            writes.append(store.reconciled_found(job.key, found[job.key]))
            result.found += 1
        elif (
            complete
            and job.callback_id in by_callback
            and listed_at - _last_possible_send(job, listed_at) >= grace_s
        ):
            writes.append(store.reconciled_absent(job.key))
            result.absent += 1
        else:
            result.still_uncertain += 1
    if writes:
        ledger.transaction(writes)
    log.info(
        "reconcile: %d found, %d proven absent, %d still uncertain",
        result.found,
        result.absent,
        result.still_uncertain,
    )
    return result


def _claimable(jobs: list[JobRecord]) -> dict[str, JobRecord]:
    """Uncertain jobs by callback_id; one shared by two jobs names neither, so never guess."""
    by_callback: dict[str, JobRecord] = {}
    ambiguous: set[str] = set()
    for job in jobs:
        if job.callback_id is None:
            continue
        if job.callback_id in by_callback:
            ambiguous.add(job.callback_id)
        by_callback[job.callback_id] = job
    for callback_id in ambiguous:
        log.warning(
            "callback_id %r is shared by several uncertain jobs; they stay uncertain",
            callback_id,
        )
        del by_callback[callback_id]
    return by_callback


async def _search(
    ledger: Ledger,
    client: VideoLister,
    limiter: AsyncLimiter,
    by_callback: dict[str, JobRecord],
    since: float,
) -> tuple[dict[str, str], bool]:
    """Page the list newest first back to ``since``: (job key → video_id found, whether
    every video created since then was looked at)."""
    found: dict[str, str] = {}
    token: str | None = None
    listed = 0
    unchecked = 0
    while listed < MAX_LISTED and len(found) < len(by_callback):
        try:
            async with limiter:
                items, token = await client.video_list(token)
        except AbortRun:
            raise
        except EngineError as err:
            log.warning("reconcile: listing videos failed (%s); jobs stay uncertain", err)
            return found, False
        listed += len(items)
        fresh = [i for i in items if i.created_at is None or i.created_at >= since]
        known = ledger.known_video_ids([i.video_id for i in fresh])
        for item in fresh:
            if item.video_id in known:
                continue
            try:
                async with limiter:
                    status = await client.video_status(item.video_id)
            except AbortRun:
                raise
            except EngineError as err:
                unchecked += 1
                log.warning("reconcile: cannot check video %s: %s", item.video_id, err)
                continue
            owner = by_callback.get(status.callback_id or "")
            if owner is not None and owner.key not in found:
                found[owner.key] = item.video_id
        if token is None or len(fresh) < len(items):
            # Reached the end of the list, or videos older than every attempt.
            return found, unchecked == 0
    return found, False


def _last_possible_send(job: JobRecord, default: float) -> float:
    """The latest moment the job's request may have left: its grace counts from there."""
    times = [t for t in (job.sent_at, job.attempted_at) if t is not None]
    return max(times) if times else default
