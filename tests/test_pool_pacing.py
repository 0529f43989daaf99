"""The pool on a virtual clock: a 429 holds every worker back, and the release is paced.

Time is the loop's virtual clock (``tests.test_rate_limiter.VirtualTimeLoop``), so a
two-second Retry-After costs nothing; the ledger and its writer are real.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError, RateLimited, ServerError
from engine.ledger import statements
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Rate, bucket_shape, make_limiter
from engine.submitter.stats import PoolStats
from engine.submitter.workers import run_workers
from tests.one_api import OneApi
from tests.test_rate_limiter import max_in_window, run_virtual

RATE = Rate(10, 1.0)
LATENCY_S = 0.05


class ScriptedService(OneApi):
    """Answers the n-th request from a script (an error to raise) else with a new video."""

    def __init__(self, script: dict[int, EngineError]) -> None:
        self.script = script
        self.starts: list[float] = []
        self.answers: list[tuple[float, str]] = []

    async def create_video(self, body: Any, idempotency_key: str | None = None) -> str:
        loop = asyncio.get_running_loop()
        n = len(self.starts)
        self.starts.append(loop.time())
        await asyncio.sleep(LATENCY_S)
        error = self.script.get(n)
        self.answers.append((loop.time(), type(error).__name__ if error else "ok"))
        if error is not None:
            raise error
        return f"video-{n}"


async def run_pool(
    tmp_path: Path, service: ScriptedService, jobs: int, stop_at: float | None = None
) -> dict[str, int]:
    path = tmp_path / "ledger.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction(
            [statements.insert_job(f"job-{n}", n, "pending", {}, "sha", None) for n in range(jobs)]
        )
    writer = BatchWriter(path)
    writer.start()
    control = RunControl()
    submitter = Submitter(service, make_limiter(RATE), writer, control, 6, PoolStats())
    queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue()
    for n in range(jobs):
        queue.put_nowait(SubmitItem(f"job-{n}", {"callback_id": f"job-{n}"}, "sha"))
    for _ in range(8):
        queue.put_nowait(None)
    if stop_at is not None:
        asyncio.get_running_loop().call_at(stop_at, setattr, control, "interrupted", True)
    await run_workers(queue, submitter, 8, control)
    await writer.close()
    with closing(Ledger(path)) as ledger:
        return ledger.counts()


def limited(after_s: float) -> RateLimited:
    return RateLimited(429, None, "rate_limit_exceeded", "slow down", retry_after=after_s)


def test_a_429_pauses_the_whole_pool_then_releases_it_one_by_one(tmp_path: Path) -> None:
    service = ScriptedService({4: limited(2.0)})
    counts = run_virtual(lambda: run_pool(tmp_path, service, 30))
    assert counts["submitted"] == 30
    (refused_at,) = [t for t, what in service.answers if what == "RateLimited"]
    resume = refused_at + 2.0
    # Nobody started during the pause, not even workers already queued at the limiter.
    assert not [t for t in service.starts if refused_at < t < resume]
    after = [t for t in service.starts if t >= resume]
    assert len(after) >= 8
    # No thundering herd: the release is spaced by the limiter, never 8 at once.
    gaps = [b - a for a, b in itertools.pairwise(after)]
    shape = bucket_shape(RATE)
    assert min(gaps) >= shape.interval_s * (2 - shape.capacity) - 1e-9
    assert max_in_window(sorted(service.starts), RATE.period_s) <= RATE.count


def test_retries_spend_the_rate_too(tmp_path: Path) -> None:
    """Ten 503s and their retries: every start, first or retry, went through the limiter."""
    service = ScriptedService({n: ServerError(503, None, None, "busy") for n in range(0, 20, 2)})
    counts = run_virtual(lambda: run_pool(tmp_path, service, 20))
    assert counts["submitted"] == 20
    assert len(service.starts) == 30
    assert max_in_window(service.starts, RATE.period_s) <= RATE.count


def test_an_interrupt_during_a_long_pause_does_not_wait_it_out(tmp_path: Path) -> None:
    service = ScriptedService({0: limited(100.0)})

    async def scenario() -> tuple[dict[str, int], float]:
        counts = await run_pool(tmp_path, service, 12, stop_at=1.0)
        return counts, asyncio.get_running_loop().time()

    counts, ended = run_virtual(scenario)
    assert ended < 2.0
    assert counts["submitting"] == 0
    assert counts["pending"] + counts["submitted"] == 12
    assert counts["pending"] >= 1  # the job that met the 429 waits for the next run


@pytest.mark.parametrize("retry_after", [0.0, 0.5])
def test_many_429s_in_a_row_still_respect_the_window(tmp_path: Path, retry_after: float) -> None:
    service = ScriptedService({n: limited(retry_after) for n in range(1, 40, 3)})
    counts = run_virtual(lambda: run_pool(tmp_path, service, 25))
    assert counts["submitted"] == 25
    assert max_in_window(service.starts, RATE.period_s) <= RATE.count
