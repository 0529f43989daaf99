"""The pool's stages: a marking stage that commits jobs ``submitting`` in groups ahead of
the workers, and the workers that send them (engine.submitter.pool.Submitter)."""

from __future__ import annotations

import asyncio
import math

from engine.submitter.constants import MARK_AHEAD_MAX, MARK_AHEAD_MIN, MARK_AHEAD_S
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Rate


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
                # With render slots full, the jobs that have one are marked and sent now.
                if group and (queue.empty() or not submitter.slot_free):
                    break
                item = await queue.get()
                if item is None:
                    ends += 1
                    continue
                try:
                    held = await submitter.hold_slot()
                except asyncio.CancelledError:
                    submitter.record_unsent(item)
                    raise
                if held:
                    group.append(item)
                else:
                    submitter.record_unsent(item)
            if control.stopping:
                for item in group:
                    submitter.drop_slot()
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
