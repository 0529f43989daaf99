"""The pool's decision for every answer and failure: final status, attempts, calls sent.

HTTP is faked at the transport (``http``); the ledger and its writer are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

from engine.api.client import HeyGenClient
from engine.api.v2 import GENERATE_PATH
from engine.errors import KeyRefused, OutOfCredit
from engine.ledger import statements
from engine.ledger.store import JobRecord, Ledger
from engine.ledger.writer import BatchWriter
from engine.submitter.control import RunControl
from engine.submitter.items import NewJob, SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Rate, make_limiter
from engine.submitter.stats import PoolStats
from engine.submitter.workers import marking_depth, run_workers
from tests.conftest import FixedAioresponses, MockedResponse

BASE = "http://heygen.test"
GENERATE = BASE + GENERATE_PATH


def ok(n: int) -> dict[str, Any]:
    """A success naming video ``vid-<n>``: the service never hands out one id twice."""
    return {"error": None, "data": {"video_id": f"vid-{n}"}}


FAST = Rate(10_000, 1.0)

pytestmark = pytest.mark.usefixtures("no_backoff")


@dataclass
class Pool:
    path: Path
    submitter: Submitter
    control: RunControl
    stats: PoolStats
    writer: BatchWriter

    def job(self, key: str) -> JobRecord:
        with closing(Ledger(self.path)) as ledger:
            record = ledger.get(key)
        assert record is not None
        return record

    def counts(self) -> dict[str, int]:
        with closing(Ledger(self.path)) as ledger:
            return ledger.counts()


def item(n: int) -> SubmitItem:
    return SubmitItem(f"job-{n}", {"callback_id": f"job-{n}", "video_inputs": []}, f"sha-{n}")


@asynccontextmanager
async def pool(
    tmp_path: Path, jobs: int = 1, max_attempts: int = 6, rate: Rate = FAST
) -> AsyncIterator[Pool]:
    path = tmp_path / "ledger.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction(
            [
                statements.insert_job(f"job-{n}", n, "pending", {}, f"sha-{n}", None)
                for n in range(jobs)
            ]
        )
    writer = BatchWriter(path)
    writer.start()
    control = RunControl()
    stats = PoolStats()
    try:
        async with HeyGenClient(BASE, "sk-test") as client:
            submitter = Submitter(client, make_limiter(rate), writer, control, max_attempts, stats)
            yield Pool(path, submitter, control, stats, writer)
    finally:
        await writer.close()


def job_queue(jobs: int, workers: int) -> asyncio.Queue[SubmitItem | None]:
    """``jobs`` items, then the one ``None`` per worker that ends the pool."""
    queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue()
    for n in range(jobs):
        queue.put_nowait(item(n))
    for _ in range(workers):
        queue.put_nowait(None)
    return queue


def sent(http: FixedAioresponses) -> int:
    return len(http.requests.get(("POST", URL(GENERATE)), []))


def reply(http: FixedAioresponses, *answers: int | Exception) -> None:
    """Queue answers in order; an int is a status (200 with a video id)."""
    videos = 0
    for answer in answers:
        if isinstance(answer, Exception):
            http.post(GENERATE, exception=answer)
        elif answer == 200:
            videos += 1
            http.post(GENERATE, payload=ok(videos))
        else:
            http.post(GENERATE, status=answer, payload={"error": {"code": "e", "message": "m"}})


async def test_success_is_submitted_with_its_video_id(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    reply(http, 200)
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "submitted"
    job = p.job("job-0")
    assert (job.status, job.video_id, job.attempts, job.body) == ("submitted", "vid-1", 1, None)
    assert sent(http) == 1


async def test_a_503_is_retried_until_success(tmp_path: Path, http: FixedAioresponses) -> None:
    reply(http, 503, 503, 200)
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "submitted"
    assert p.job("job-0").attempts == 3
    assert sent(http) == 3


async def test_429s_never_spend_the_jobs_attempts(tmp_path: Path, http: FixedAioresponses) -> None:
    """CONTRACT 5: a 429 is "not yet". Ten of them with --max-attempts 2 still end
    ``submitted``; the ledger counts only the attempt that was answered."""
    reply(http, *[429] * 10, 503, 200)
    async with pool(tmp_path, max_attempts=2) as p:
        assert await p.submitter.submit(item(0)) == "submitted"
    assert p.job("job-0").attempts == 2
    assert p.stats.refusals == 10
    assert sent(http) == 12


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_gateway_fault_leaves_the_job_uncertain_and_sent_once(
    tmp_path: Path, http: FixedAioresponses, status: int
) -> None:
    """V2 (CONTRACT 5): the gateway may have passed the request on, so no blind resend."""
    reply(http, status, 200)
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "uncertain"
    job = p.job("job-0")
    assert (job.status, job.attempts) == ("uncertain", 1)
    assert job.error is not None
    assert job.error.startswith(f"HTTP {status}")
    assert sent(http) == 1


async def test_a_refused_connection_is_retried(tmp_path: Path, http: FixedAioresponses) -> None:
    key = aiohttp.client_reqrep.ConnectionKey("heygen.test", 80, False, True, None, None, None)
    reply(http, aiohttp.ClientConnectorError(key, OSError(111, "refused")), 200)
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "submitted"
    assert sent(http) == 2


async def test_retries_stop_at_max_attempts(tmp_path: Path, http: FixedAioresponses) -> None:
    reply(http, *[503] * 4)
    async with pool(tmp_path, max_attempts=3) as p:
        assert await p.submitter.submit(item(0)) == "failed"
    job = p.job("job-0")
    assert job.attempts == 3
    assert job.error is not None
    assert job.error.startswith("gave up after 3 attempts")
    assert sent(http) == 3


@pytest.mark.parametrize("status", [400, 404, 422, 501])
async def test_other_errors_fail_at_once_with_the_message(
    tmp_path: Path, http: FixedAioresponses, status: int
) -> None:
    http.post(
        GENERATE,
        status=status,
        payload={"error": {"code": "invalid_parameter", "message": "avatar_id not found"}},
    )
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "failed"
    job = p.job("job-0")
    assert job.status == "failed"
    assert job.error is not None
    assert "avatar_id not found" in job.error
    assert sent(http) == 1


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.SocketTimeoutError("read"),
        TimeoutError(),
        aiohttp.ClientPayloadError("truncated"),
    ],
)
async def test_maybe_sent_failures_are_uncertain_and_never_resent(
    tmp_path: Path, http: FixedAioresponses, failure: Exception
) -> None:
    reply(http, failure, 200)
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "uncertain"
    job = p.job("job-0")
    assert job.status == "uncertain"
    assert job.body is not None  # kept for a resend once reconcile proves it absent
    assert job.callback_id == "job-0"
    assert sent(http) == 1


async def test_a_success_without_video_id_is_uncertain(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    http.post(GENERATE, payload={"error": None, "data": None})
    async with pool(tmp_path) as p:
        assert await p.submitter.submit(item(0)) == "uncertain"
    assert sent(http) == 1


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, None, KeyRefused),
        (403, None, KeyRefused),
        (402, None, OutOfCredit),
        (400, {"error": {"code": "insufficient_credit", "message": "empty"}}, OutOfCredit),
    ],
)
async def test_refused_key_or_credit_stops_the_pool_and_leaves_jobs_pending(
    tmp_path: Path, http: FixedAioresponses, status: int, body: Any, kind: type[Exception]
) -> None:
    http.post(GENERATE, status=status, payload=body, repeat=True)
    async with pool(tmp_path, jobs=6) as p:
        queue = job_queue(6, workers=1)
        await run_workers(queue, p.submitter, 1, p.control)
    assert isinstance(p.control.abort, kind)
    assert sent(http) == 1
    assert p.counts()["pending"] == 6
    assert p.job("job-0").error is not None


async def test_in_flight_requests_finish_after_an_abort(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    """The first answer is 401; the two requests already out still land as submitted."""
    arrived: list[int] = []
    all_out = asyncio.Event()
    refused = asyncio.Event()

    async def answer(url: URL, **kwargs: Any) -> CallbackResult:
        n = len(arrived)
        arrived.append(n)
        if len(arrived) == 3:
            all_out.set()
        if arrived[-1] == 0:
            await all_out.wait()
            refused.set()
            return CallbackResult(
                status=401,
                payload={"error": {"code": "unauthorized"}},
                response_class=MockedResponse,
            )
        await refused.wait()
        return CallbackResult(payload=ok(n), response_class=MockedResponse)

    http.post(GENERATE, callback=answer, repeat=True)
    async with pool(tmp_path, jobs=8) as p:
        queue = job_queue(8, workers=3)
        await run_workers(queue, p.submitter, 3, p.control)
    assert sent(http) == 3
    counts = p.counts()
    assert counts["submitted"] == 2
    assert counts["pending"] == 6
    assert p.stats.in_flight == 0


async def test_a_cancelled_request_is_uncertain(tmp_path: Path, http: FixedAioresponses) -> None:
    """Cancelled while the request is out (e.g. the grace period ran out): maybe created."""
    started = asyncio.Event()

    async def hang(url: URL, **kwargs: Any) -> CallbackResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    http.post(GENERATE, callback=hang)
    async with pool(tmp_path) as p:
        task = asyncio.create_task(p.submitter.submit(item(0)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    job = p.job("job-0")
    assert job.status == "uncertain"
    assert job.attempts == 1
    assert p.stats.in_flight == 0


async def test_a_job_cancelled_before_sending_goes_back_to_pending(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    reply(http, 200)
    async with pool(tmp_path, jobs=2, rate=Rate(1, 3600.0)) as p:
        assert await p.submitter.submit(item(0)) == "submitted"
        waiting = asyncio.create_task(p.submitter.submit(item(1)))
        await asyncio.sleep(0.01)  # it is now queued at the limiter for an hour
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert p.job("job-1").status == "pending"
    assert sent(http) == 1


@pytest.mark.parametrize(
    "stop",
    [
        lambda c: setattr(c, "interrupted", True),
        lambda c: c.abort_run(KeyRefused(401, None, None, "refused")),
    ],
    ids=["interrupt", "abort"],
)
async def test_a_stop_frees_workers_waiting_at_the_limiter(
    tmp_path: Path, http: FixedAioresponses, stop: Callable[[RunControl], None]
) -> None:
    """At 1/h the next start is an hour away; a stop must not wait for it."""
    reply(http, 200)
    async with pool(tmp_path, jobs=3, rate=Rate(1, 3600.0)) as p:
        queue = job_queue(3, workers=3)
        workers = asyncio.create_task(run_workers(queue, p.submitter, 3, p.control))
        # Polled: the pool has no hook for "first job done", and tests must not add one.
        while p.stats.submitted == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        stop(p.control)
        await asyncio.wait_for(workers, 5)  # guards against a hang, not a timing check
    counts = p.counts()
    assert (counts["submitted"], counts["pending"]) == (1, 2)
    assert sent(http) == 1


async def test_a_job_cancelled_while_being_marked_is_never_left_submitting(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    async with pool(tmp_path) as p:
        task = asyncio.create_task(p.submitter.submit(item(0)))
        await asyncio.sleep(0)  # it is now waiting for the "submitting" mark to commit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert p.job("job-0").status == "pending"
    assert sent(http) == 0


@pytest.mark.parametrize(
    ("rate", "concurrency", "depth"),
    [
        (Rate(1, 1.0), 8, 16),  # a slow service: twice the concurrency, one commit per group
        (Rate(600, 60.0), 4, 8),
        (Rate(2_000, 1.0), 8, 64),  # 50 ms at 2,000/s would be 100: capped at 8 x 8
        (Rate(1_000, 1.0), 16, 50),  # 50 ms of sending
        (Rate(1_000_000, 1.0), 32, 256),  # "as fast as it goes": the cap
    ],
)
def test_the_marking_depth_follows_the_rate_within_bounds(
    rate: Rate, concurrency: int, depth: int
) -> None:
    assert marking_depth(rate, concurrency) == depth


async def test_no_more_than_the_marking_depth_is_marked_ahead_of_the_workers(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    """Two workers hang on their requests: the ledger holds theirs and at most six more
    as ``submitting``, never the whole queue."""
    release = asyncio.Event()
    started: list[int] = []

    async def hold(url: URL, **kwargs: Any) -> CallbackResult:
        started.append(1)
        n = len(started)
        await release.wait()
        return CallbackResult(payload=ok(n), response_class=MockedResponse)

    http.post(GENERATE, callback=hold, repeat=True)
    async with pool(tmp_path, jobs=30) as p:
        queue = job_queue(30, workers=2)
        workers = asyncio.create_task(run_workers(queue, p.submitter, 2, p.control, depth=6))
        while len(started) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await p.writer.flush()
        marked = p.counts()["submitting"]
        release.set()
        await asyncio.wait_for(workers, 5)
    assert 2 < marked <= 2 + 6
    assert p.counts()["submitted"] == 30


async def test_a_job_new_to_the_ledger_cancelled_while_being_marked_is_recorded_pending(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    """Its mark is the insert: the release that follows it must find the row."""
    new = SubmitItem(
        "fresh",
        {"callback_id": "fresh", "video_inputs": []},
        "sha-fresh",
        new=NewJob(7, {"name": "Ava"}, "print-fresh"),
    )
    async with pool(tmp_path, jobs=0) as p:
        task = asyncio.create_task(p.submitter.submit(new))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    job = p.job("fresh")
    assert (job.status, job.line, job.source, job.request_sha256) == (
        "pending",
        7,
        {"name": "Ava"},
        "sha-fresh",
    )
    assert sent(http) == 0


async def test_a_job_new_to_the_ledger_is_inserted_by_its_mark_and_then_submitted(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    reply(http, 200)
    new = SubmitItem(
        "fresh",
        {"callback_id": "fresh", "video_inputs": []},
        "sha-fresh",
        body_json='{"callback_id":"fresh","video_inputs":[]}',
        new=NewJob(7, {"name": "Ava"}, "print-fresh"),
    )
    async with pool(tmp_path, jobs=0) as p:
        assert await p.submitter.submit(new) == "submitted"
    job = p.job("fresh")
    assert (job.status, job.line, job.callback_id, job.video_id) == (
        "submitted",
        7,
        "fresh",
        "vid-1",
    )
