"""Settle ``uncertain`` jobs by asking the service what it actually created.

The service has no look-up by callback_id, so: list the videos created since
the earliest uncertain attempt (newest first, paged; see ``listing`` for the
window and the checks a listing must pass), skip those the ledger already
knows, and read each remaining one's status, whose ``callback_id`` names the
job it belongs to. A job found becomes ``submitted``.

A job not found becomes ``pending`` (and may be sent again) only when:

- its grace period is over: ``grace_s`` from the last moment its request could
  have reached the service (its answer or error, the end of its timeout, or the
  restart after a kill), to the start of the listing, since the service's list
  may lag behind what it created;
- the listing passed every check and every video in the window was looked up;
- a second listing, with another page size, agrees with the first (read only
  when some job would otherwise be declared absent, so its cost is rare).

Anything else stays ``uncertain``, and a job whose grace is over says why in
its error.

A video's status ``callback_id`` is the proof of whom it belongs to, above what
an answer said: an answer can name the wrong video (another job's, made for a job
whose own answer was lost). So an unknown video whose status names a job of this
ledger recorded with a *different* video proves that record wrong: its recorded
video is read in the same pass, and unless it too is that job's (the job then has
two), the job takes the proven video and the recorded one is freed and claimed
like any unknown video, so the job whose answer was lost is found, not resent.
Should that read fail, the pass proves no absence.

Times are on our clock, which may be stepped between an attempt and its
reconcile; each job keeps the service clock's lead measured at its attempt, which
places the window (see ``listing``) and can only lengthen the grace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.api.port import ApiRouter, RenderStatus, VideoApi, api_name
from engine.errors import AbortRun, EngineError
from engine.ledger import statements
from engine.ledger.listing import (
    disagreement,
    read_listing,
    window_start,
)
from engine.ledger.replay import UNPROVABLE, settle_by_replay, unsettled
from engine.ledger.statements import Statement
from engine.ledger.store import JobRecord, Ledger
from engine.request.responses import VideoListItem
from engine.submitter.constants import CHECK_PAGE_SIZE, DEFAULT_GRACE_S, LIST_PAGE_SIZE
from engine.submitter.rate import Limiter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReconcileResult:
    found: int = 0
    absent: int = 0
    still_uncertain: int = 0
    #: Jobs a replay of their key showed the service refuses (nothing was made).
    failed: int = 0
    #: Jobs recorded with another job's video, given their own.
    corrected: int = 0
    #: Why jobs whose grace is over could not be proven absent, when that was the case.
    problem: str | None = None
    #: When (local clock) the grace of each job kept only by its grace ends.
    grace_ends: list[float] = field(default_factory=list)


async def reconcile(
    ledger: Ledger,
    client: ApiRouter,
    limiter: Limiter,
    grace_s: float = DEFAULT_GRACE_S,
    clock: Callable[[], float] = time.time,
) -> ReconcileResult:
    """Settle every ``uncertain`` job in ``ledger``; writes are committed before returning.

    Each job is settled through the API it records: by replaying its Idempotency-Key
    where the API has one and the job is young enough (``engine.ledger.replay``), else
    by listing where the API's videos name their callback_id; else it stays uncertain.
    Only a refused key (AbortRun) or a ledger that cannot be written escapes; any other
    failure to list or check leaves the jobs concerned ``uncertain``, since absence is
    then not proven.
    """
    jobs = ledger.with_status("uncertain")
    result = ReconcileResult()
    by_api: dict[str, list[JobRecord]] = {}
    for job in jobs:
        by_api.setdefault(job.api, []).append(job)
    writes: list[Statement] = []
    for name, group in by_api.items():
        api = client.for_api(api_name(name))
        listed = group
        if api.features.idempotent_create:
            replayed, listed = await settle_by_replay(ledger, api, limiter, group, result, clock)
            writes += replayed
        if not listed:
            continue
        if api.features.list_has_callback_id:
            writes += await _by_listing(ledger, api, limiter, listed, result, grace_s, clock)
        else:
            result.still_uncertain += len(listed)
            writes += [unsettled(job, UNPROVABLE) for job in listed]
    if writes:
        ledger.transaction(writes)
    if jobs:
        log.info(
            "reconcile: %d found, %d proven absent, %d still uncertain, %d corrected%s",
            result.found,
            result.absent,
            result.still_uncertain,
            result.corrected,
            f" ({result.problem})" if result.problem else "",
        )
    return result


async def _by_listing(
    ledger: Ledger,
    client: VideoApi,
    limiter: Limiter,
    jobs: list[JobRecord],
    result: ReconcileResult,
    grace_s: float,
    clock: Callable[[], float],
) -> list[Statement]:
    """Settle ``jobs`` by listing the service's videos: the writes that settle them."""
    by_callback = _claimable(jobs)
    attempts = [(j.attempted_at or 0.0, j.service_offset) for j in jobs]
    # Grace runs to the listing's start, not its end: a video created while the
    # pages are read may be missed by them.
    listed_at = clock()
    search = _Search(ledger, client, limiter, by_callback)
    first = await read_listing(
        client,
        limiter,
        LIST_PAGE_SIZE,
        lambda: window_start(attempts, client.service_clock_offset()),
        search.check,
    )
    lead = client.service_clock_offset()
    due = [
        j
        for j in by_callback.values()
        if j.key not in search.found and listed_at - _grace_start(j, listed_at, lead) >= grace_s
    ]
    problem = first.problem or search.problem
    if due and problem is None:
        second = await read_listing(
            client, limiter, CHECK_PAGE_SIZE, lambda: first.since, search.check
        )
        due = [j for j in due if j.key not in search.found]
        problem = second.problem or search.problem
        if problem is None and second.complete:
            problem = disagreement(first, second)
    result.problem = result.problem or problem
    due_keys = {j.key for j in due}

    writes: list[Statement] = [
        # First, so the videos they free can be recorded for their owners below.
        statements.repoint_video(key, recorded, own)
        for key, (recorded, own) in search.corrected.items()
    ]
    result.corrected += len(search.corrected)
    for job in jobs:
        if job.key in search.found:
            writes.append(statements.reconciled_found(job.key, search.found[job.key]))
            result.found += 1
            continue
        if job.key in due_keys and problem is None:
            writes.append(statements.reconciled_absent(job.key))
            result.absent += 1
            continue
        result.still_uncertain += 1
        reason = problem if job.key in due_keys else _never_claimable(job, by_callback)
        if reason is not None:
            writes.append(unsettled(job, reason))
        elif job.callback_id in by_callback:
            result.grace_ends.append(_grace_start(job, listed_at, lead) + grace_s)
    return writes


class _Search:
    """Looks up the videos the listings show, once each, for the jobs' callback_ids."""

    def __init__(
        self,
        ledger: Ledger,
        client: VideoApi,
        limiter: Limiter,
        by_callback: dict[str, JobRecord],
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._limiter = limiter
        self._by_callback = by_callback
        self._looked: set[str] = set()
        #: job key → the video_id found for it.
        self.found: dict[str, str] = {}
        #: job key → (the video it is recorded with, its own video proven by callback_id).
        self.corrected: dict[str, tuple[str, str]] = {}
        #: The first video that could not be looked up, which leaves absence unproven.
        self.problem: str | None = None

    async def check(self, items: list[VideoListItem]) -> bool:
        """Look up the videos not yet seen and not the ledger's; True once all are found."""
        new = [i.video_id for i in items if i.video_id not in self._looked]
        self._looked.update(new)
        known = self._ledger.known_video_ids(new)
        for video_id in new:
            if video_id in known:
                continue
            status = await self._status(video_id)
            if status is not None:
                await self._claim(video_id, status)
        return len(self.found) == len(self._by_callback)

    async def _status(self, video_id: str) -> RenderStatus | None:
        """The video's status; None (and absence unproven) when it cannot be read."""
        try:
            async with self._limiter:
                return await self._client.video_status(video_id)
        except AbortRun:
            raise
        except EngineError as err:
            log.warning("reconcile: cannot check video %s: %s", video_id, err)
            self.problem = self.problem or f"video {video_id} could not be checked: {err}"
            return None

    async def _claim(self, video_id: str, status: RenderStatus) -> None:
        """Give a video unknown to the ledger to the job its callback_id names."""
        callback_id = status.callback_id
        if not callback_id:
            return
        owner = self._by_callback.get(callback_id)
        if owner is not None:
            if owner.key not in self.found:
                self.found[owner.key] = video_id
            return
        holder = self._ledger.sent_with_callback_id(callback_id)
        if (
            holder is not None
            and holder.video_id not in (None, video_id)
            and holder.key not in self.corrected
        ):
            await self._correct(holder, video_id)

    async def _correct(self, holder: JobRecord, own: str) -> None:
        """``own`` is proven ``holder``'s, which is recorded with another video."""
        recorded = holder.video_id
        assert recorded is not None
        self._looked.add(recorded)
        status = await self._status(recorded)
        if status is None:
            return
        if status.callback_id == holder.callback_id:
            # Both are its own: it was made twice, and the record holds one of them.
            log.warning("job %s has two videos, %s and %s", holder.key, recorded, own)
            return
        log.warning(
            "job %s was answered with video %s, made for %r; its own is %s",
            holder.key,
            recorded,
            status.callback_id,
            own,
        )
        self.corrected[holder.key] = (recorded, own)
        await self._claim(recorded, status)


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


def _never_claimable(job: JobRecord, by_callback: dict[str, JobRecord]) -> str | None:
    if job.callback_id in by_callback:
        return None
    if job.callback_id is None:
        return "it was sent without a callback_id, so no video can be told to be its own"
    return f"its callback_id {job.callback_id!r} is shared by other uncertain jobs"


def _grace_start(job: JobRecord, default: float, lead: float | None) -> float:
    """The last moment the job's request could have reached the service, on our clock now.

    Its times were taken by our clock then. When the service's lead was known both then
    and now, a lead shrunk since means our clock was stepped forward in between, so its
    times then read early: the start moves later by as much. A lead grown (our clock
    stepped back) is not taken: the times then read late, which lengthens the grace,
    and may be from a restart after the step. Either way the grace can only lengthen.
    """
    times = [t for t in (job.sent_at, job.attempted_at) if t is not None]
    start = max(times) if times else default
    if job.service_offset is not None and lead is not None:
        start += max(0.0, job.service_offset - lead)
    return start
