"""Render slots: at most N of this ledger's videos rendering at once (``--max-rendering``),
and the polling that learns when they finish (``--until-done``).

HeyGen's real limit is renders in progress, not requests (HEYGEN-V3.md, limits): a
create beyond it is refused with 429. The ``RenderTracker`` holds a slot for every
video this ledger has rendering, from the ledger at the start (a killed run's videos
are counted by what the ledger and the service say, never from memory) and from each
create of this run. The pool takes a slot before it marks a job ``submitting`` and
gives it back unless a video was made.

Completions are learned by status calls (``StatusSource``, one call per video on V2,
bulk where the API has them). They are made only while a job waits for a slot, or
while the run waits for its last renders, so they never crowd out submissions; one
call at a time. Each video is first checked when the quickest render seen lately
would have ended, then again every ``SLOT_RECHECK_SHARE`` of that, so a freed slot is
used soon after the service frees it. A render's time is taken half-way between the
last check that saw it busy and the one that saw it done, so an early sample seen late
(before any render time is known) does not set every later check late.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.api.port import ApiName, ApiRouter, RenderStatus, api_name
from engine.errors import AbortRun, BadRequest, EngineError
from engine.ledger.poll import render_outcome
from engine.ledger.writer import BatchWriter
from engine.submitter.constants import (
    SLOT_FIRST_CHECK_S,
    SLOT_RECHECK_MAX_S,
    SLOT_RECHECK_MIN_S,
    SLOT_RECHECK_SHARE,
    SLOT_SAMPLES,
)
from engine.submitter.control import RunControl
from engine.submitter.rate import Limiter
from engine.submitter.stats import PoolStats

log = logging.getLogger(__name__)


class StatusSource(Protocol):
    """Where the tracker learns how renders stand.

    ``batch(api)``: how many ids of that API one call of ``statuses`` is worth (1 on V2,
    100 on v3's bulk status endpoint). ``statuses`` answers for the ids it could check: a
    status, or None when the service does not know the video (it will never finish); an
    id left out could not be checked now and is asked again later. Raises ``AbortRun``
    when no call can succeed (the key refused).
    """

    def batch(self, api: ApiName) -> int: ...

    async def statuses(
        self, api: ApiName, video_ids: Sequence[str]
    ) -> dict[str, RenderStatus | None]: ...


class ApiStatuses:
    """``StatusSource`` over each job's API: its bulk status call where it has one (v3:
    100 ids a call), else one call per video (V2's ``video_status.get``); each call under
    the run's limiter, so status calls keep to ``--rate`` with the creates. A render the
    bulk call says is completed is asked about alone: only that answer has its URLs."""

    def __init__(self, client: ApiRouter, limiter: Limiter) -> None:
        self._client = client
        self._limiter = limiter

    def batch(self, api: ApiName) -> int:
        return max(self._client.for_api(api).features.bulk_status_max, 1)

    async def statuses(
        self, api: ApiName, video_ids: Sequence[str]
    ) -> dict[str, RenderStatus | None]:
        reader = self._client.for_api(api)
        found: dict[str, RenderStatus | None] = {}
        one_by_one = list(video_ids)
        if len(video_ids) > 1:
            async with self._limiter:
                try:
                    found = await reader.video_statuses(video_ids)
                except AbortRun:
                    raise
                except EngineError as err:
                    log.debug("bulk status of %d videos: %s; will ask again", len(video_ids), err)
                    return {}
            one_by_one = [
                v for v, status in found.items() if status and status.state == "completed"
            ]
        for video_id in one_by_one:
            async with self._limiter:
                try:
                    found[video_id] = await reader.video_status(video_id)
                except AbortRun:
                    raise
                except BadRequest as err:
                    log.warning("video %s cannot be checked: %s", video_id, err)
                    found[video_id] = None
                except EngineError as err:
                    log.debug("video %s: %s; will ask again", video_id, err)
        return found


@dataclass(slots=True)
class _Render:
    key: str
    callback_id: str | None
    api: ApiName
    #: ``clock()`` when the create was answered; None for one found in the ledger, whose
    #: start is unknown (so its render time tells nothing).
    started: float | None
    due: float
    interval: float
    #: When a check last found it still rendering.
    busy_at: float | None = None


class RenderTracker:
    """The slots of one run; ``cap`` None counts renders (for ``--until-done``) but never
    makes a worker wait. Live counts go to ``stats`` for the progress line."""

    def __init__(
        self,
        source: StatusSource,
        writer: BatchWriter,
        stats: PoolStats,
        cap: int | None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._wall = wall
        self._writer = writer
        self._stats = stats
        self._cap = cap
        self._clock = clock
        self._renders: dict[str, _Render] = {}
        self._reserved = 0
        self._waiting = 0
        self._draining = False
        self._samples: deque[float] = deque(maxlen=SLOT_SAMPLES)
        #: Set when a slot frees (waiters look again) and when there is work to poll.
        self._freed = asyncio.Event()
        self._poke = asyncio.Event()

    # --- slots, for the workers ----------------------------------------------------------

    @property
    def rendering(self) -> int:
        return len(self._renders)

    @property
    def free(self) -> bool:
        """Whether ``acquire`` would return at once."""
        return self._cap is None or len(self._renders) + self._reserved < self._cap

    def adopt(self, renders: Iterable[tuple[str, str, str | None, str]]) -> None:
        """Count videos the ledger holds as still rendering ((key, video_id, callback_id,
        api)), due for a check at once: after a kill nothing else says whether they
        finished."""
        now = self._clock()
        for key, video_id, callback_id, api in renders:
            if video_id not in self._renders:
                self._renders[video_id] = _Render(
                    key, callback_id, api_name(api), None, now, SLOT_FIRST_CHECK_S
                )
        self._show()
        self._poke.set()

    async def acquire(self, control: RunControl) -> bool:
        """Take a slot, waiting until one is free; False when the run stops first, or
        when no render ends within --max-wait (which stops the run, exit 75)."""
        cap = self._cap
        while cap is not None and len(self._renders) + self._reserved >= cap:
            self._waiting += 1
            self._show()
            self._poke.set()
            try:
                if not await self._until_freed(control):
                    return False
            finally:
                self._waiting -= 1
                self._show()
        self._reserved += 1
        return True

    async def _until_freed(self, control: RunControl) -> bool:
        """Wait for a render to end (or a slot to be given back); False on a stop, and on
        a wait beyond --max-wait, which stops the run."""
        self._freed.clear()

        async def wait() -> None:
            await asyncio.wait_for(self._freed.wait(), control.max_wait_s)

        try:
            return await control.unless_stopped(wait)
        except TimeoutError:
            control.slots_stalled(self._wall())
            return False

    def release(self) -> None:
        """A slot taken by ``acquire`` whose job made no video (or was never sent)."""
        self._reserved -= 1
        self._freed.set()

    def started(self, key: str, video_id: str, callback_id: str | None, api: ApiName) -> None:
        """The slot taken by ``acquire`` now holds ``video_id``'s render."""
        self._reserved -= 1
        now = self._clock()
        first = self._estimate() or SLOT_FIRST_CHECK_S
        self._renders[video_id] = _Render(key, callback_id, api, now, now + first, first)
        self._show()
        self._poke.set()

    # --- polling ---------------------------------------------------------------------------

    async def run(self, control: RunControl) -> None:
        """Poll while someone needs a slot or the last renders; until cancelled or a stop.

        A refused key stops the run (through ``control``) instead of ending here silently.
        """
        try:
            while not control.stopping:
                if not (self._waiting or self._draining) or not self._renders:
                    self._poke.clear()
                    await control.unless_stopped(self._poke.wait)
                    continue
                now = self._clock()
                due = sorted((r.due, vid) for vid, r in self._renders.items() if r.due <= now)
                if not due:
                    nap = min(r.due for r in self._renders.values()) - now
                    self._poke.clear()
                    await control.unless_stopped(functools.partial(self._nap, nap))
                    continue
                api = self._renders[due[0][1]].api
                same = [vid for _, vid in due if self._renders[vid].api == api]
                await self._check(api, same[: self._source.batch(api)])
        except AbortRun as err:
            control.abort_run(err)

    async def _nap(self, seconds: float) -> None:
        """Until ``seconds`` pass or a new need comes (a waiter, a drain, an adopted render)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poke.wait(), max(seconds, 0.0))

    async def _check(self, api: ApiName, video_ids: list[str]) -> None:
        answers = await self._source.statuses(api, video_ids)
        now = self._clock()
        freed = False
        for video_id in video_ids:
            render = self._renders.get(video_id)
            if render is None:
                continue
            if video_id not in answers:
                render.due = now + render.interval
                continue
            status = answers[video_id]
            if status is None:
                outcome = "missing"
            else:
                outcome, statement = render_outcome(
                    render.key, video_id, render.callback_id, status
                )
                self._writer.write(statement)
            if outcome == "rendering":
                render.busy_at = now
                render.interval = self._recheck(render.interval)
                render.due = now + render.interval
                continue
            del self._renders[video_id]
            freed = True
            if outcome == "completed":
                self._stats.rendered += 1
                if render.started is not None:
                    # It ended between the last check that saw it busy and this one.
                    ended = now if render.busy_at is None else (render.busy_at + now) / 2
                    self._samples.append(ended - render.started)
            elif outcome == "failed":
                self._stats.render_failed += 1
        if freed:
            self._show()
            self._freed.set()

    def _estimate(self) -> float | None:
        """The quickest render seen lately (seconds from the create's answer). The
        quickest, not a mean: renders checked one after another are seen done a little
        late, and checks timed by those would drift later and later."""
        return min(self._samples) if self._samples else None

    def _recheck(self, interval: float) -> float:
        estimate = self._estimate()
        if estimate is None:
            # No render seen to its end yet: back off, so a long first render costs few calls.
            return min(interval * 2, SLOT_RECHECK_MAX_S)
        return min(max(estimate * SLOT_RECHECK_SHARE, SLOT_RECHECK_MIN_S), SLOT_RECHECK_MAX_S)

    async def drain(
        self, control: RunControl, renders: Iterable[tuple[str, str, str | None, str]]
    ) -> None:
        """``--until-done``: poll until every render is completed or failed (or the run
        stops). ``renders``: the ledger's unfinished ones, which may include videos found
        by reconcile since the start."""
        self.adopt(renders)
        self._draining = True
        self._poke.set()
        try:
            while self._renders and await self._until_freed(control):
                pass
        finally:
            self._draining = False

    def _show(self) -> None:
        stats = self._stats
        stats.rendering = len(self._renders)
        stats.waiting_slot = self._waiting
        stats.render_estimate_s = self._estimate()
        stats.slots = self._cap


def slots_eta(stats: PoolStats, left: int) -> float | None:
    """Seconds until ``left`` more jobs and the renders under way are done, at ``stats.slots``
    renders at once of the quickest render time seen; None before one is seen."""
    estimate, cap = stats.render_estimate_s, stats.slots
    if estimate is None or not cap:
        return None
    return math.ceil((left + stats.rendering) / cap) * estimate
