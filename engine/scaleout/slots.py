"""``worker --max-rendering N``: at most N videos of one account rendering at once, for
every worker together, through the render slots the database keeps (``Fleet``).

A job's slot is taken with its start's grant (``SharedLimiter``, which learns the job
from ``CURRENT_JOB``), given the video when the service answers (``SharedSlots``), and
freed when its render ends, learned by one poller per account (``poll_renders``) making
bulk status calls, or at once when the job made no video. Before a job is marked
``submitting`` the pool waits until a slot looks free (``SharedSlots.acquire``), so a
worker killed meanwhile leaves few marked jobs that were only waiting for a slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from engine.api.port import ApiName, ApiRouter, api_name
from engine.errors import AbortRun, EngineError
from engine.ledger.open import open_ledger
from engine.ledger.poll import render_outcome
from engine.ledger.postgres.constants import CAMPAIGN_SCHEMA_PREFIX, RENDER_SLOT_WAIT_S
from engine.ledger.postgres.fleet import Fleet, Lease, Slot
from engine.ledger.store import Ledger, Status
from engine.scaleout.jobs import CURRENT_JOB
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Limiter
from engine.submitter.slots import ApiStatuses

log = logging.getLogger(__name__)


class LaneSubmitter(Submitter):
    """A ``Submitter`` that names the job it sends (``CURRENT_JOB``) for the grants and
    slots taken while sending it."""

    def __init__(self, schema: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema = schema

    async def send(self, item: SubmitItem) -> Status:
        token = CURRENT_JOB.set((self._schema, item.key))
        try:
            return await super().send(item)
        finally:
            CURRENT_JOB.reset(token)


class _Background:
    """Database calls made from synchronous callbacks, kept until done."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def logged() -> None:
            try:
                await work
            except EngineError as err:
                # The poller frees a slot whose job holds none any more.
                log.warning("render slots: %s: %s", what, err)

        task = asyncio.create_task(logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class SharedSlots:
    """The pool's ``SlotGate`` on the account's shared slots (``cap``: --max-rendering)."""

    def __init__(self, fleet: Fleet, account: str, schema: str, cap: int) -> None:
        self._fleet = fleet
        self._account = account
        self._schema = schema
        self._cap = cap
        #: Slots this worker counts on for jobs marked and not yet answered.
        self._reserved = 0
        self._background = _Background()

    @property
    def free(self) -> bool:
        return self._reserved < self._cap

    async def acquire(self, control: RunControl) -> bool:
        """Wait until the account's slots in use and ours reserved leave one free;
        False when the worker stops first."""
        while not control.stopping:
            busy = len(await self._fleet.rendering(self._account))
            if busy + self._reserved < self._cap:
                self._reserved += 1
                return True
            await control.sleep(RENDER_SLOT_WAIT_S)
        return False

    def release(self) -> None:
        """The job made no video (or was never sent): its slot, if it took one, is free."""
        self._reserved = max(self._reserved - 1, 0)
        job = CURRENT_JOB.get()
        if job is not None:
            campaign, key = job
            self._background.spawn(
                self._fleet.free_slot(self._account, campaign, key), f"freeing {key}'s slot"
            )

    def started(self, key: str, video_id: str, callback_id: str | None, api: ApiName) -> None:
        self._reserved = max(self._reserved - 1, 0)
        self._background.spawn(
            self._fleet.slot_video(self._account, self._schema, key, video_id),
            f"recording {key}'s video",
        )


class RenderPoller:
    """The account's one poller of the moment (``Fleet.poller``): follows every slot's
    render by bulk status calls, records outcomes in its campaign's ledger, and frees
    the slots of renders that ended and of jobs that hold none any more."""

    def __init__(
        self,
        fleet: Fleet,
        lease: Lease,
        account: str,
        url: str,
        client: ApiRouter,
        limiter: Limiter,
    ) -> None:
        self._fleet = fleet
        self._lease = lease
        self._account = account
        self._url = url
        self._statuses = ApiStatuses(client, limiter)
        self._ledgers: dict[str, Ledger] = {}

    async def run(self, control: RunControl) -> None:
        """Until the worker stops: poll while this is the account's poller, else wait to
        become it (the holder's lease ending frees the role)."""
        try:
            while not control.stopping:
                async with self._fleet.poller(self._account, self._lease) as mine:
                    while mine and not control.stopping:
                        await self._round()
                        await control.sleep(RENDER_SLOT_WAIT_S)
                await control.sleep(RENDER_SLOT_WAIT_S)
        except AbortRun as err:
            control.abort_run(err)
        finally:
            for ledger in self._ledgers.values():
                ledger.close()

    def _ledger(self, schema: str) -> Ledger:
        if schema not in self._ledgers:
            name = schema.removeprefix(CAMPAIGN_SCHEMA_PREFIX)
            # Fenced like the worker's writer: once its lease is lost, it records nothing.
            self._ledgers[schema] = open_ledger(
                self._url, campaign=name, create=False, guard=self._fleet.fence_sql(self._lease)
            )
        return self._ledgers[schema]

    async def _round(self) -> None:
        by_api: dict[ApiName, list[tuple[Slot, str | None]]] = {}
        for slot in await self._fleet.rendering(self._account):
            job = self._ledger(slot.campaign).get(slot.key)
            if job is None or job.status in ("pending", "failed", "invalid"):
                await self._fleet.free_slot(self._account, slot.campaign, slot.key)
            elif slot.video_id is None and job.status == "submitted" and job.video_id:
                # Its answer is in the ledger, the slot's update was lost.
                await self._fleet.slot_video(self._account, slot.campaign, slot.key, job.video_id)
            elif slot.video_id is not None:
                by_api.setdefault(api_name(job.api), []).append((slot, job.callback_id))
        for api, slots in by_api.items():
            batch = self._statuses.batch(api)
            for start in range(0, len(slots), batch):
                await self._check(api, slots[start : start + batch])

    async def _check(self, api: ApiName, slots: list[tuple[Slot, str | None]]) -> None:
        ids = [slot.video_id for slot, _ in slots if slot.video_id is not None]
        answers = await self._statuses.statuses(api, ids)
        for slot, callback_id in slots:
            video_id = slot.video_id
            if video_id is None or video_id not in answers:
                continue  # not checked this time: asked again next round
            status = answers[video_id]
            if status is not None:
                outcome, statement = render_outcome(slot.key, video_id, callback_id, status)
                self._ledger(slot.campaign).transaction([statement])
                if outcome == "rendering":
                    continue
            await self._fleet.free_slot(self._account, slot.campaign, slot.key)
