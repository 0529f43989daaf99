"""What counts as proof of absence (CONTRACT section 4), against a fake that counts creations.

Skewed clocks both ways, paging that skips, repeats or reorders, a service without
a ``Date`` header, and a grace counted from the last moment a request could arrive:
each ends with exactly one video per job, or the job stays ``uncertain`` with a reason.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from engine.api.client import HeyGenClient
from engine.api.port import RenderStatus
from engine.campaign import run_campaign
from engine.errors import ConnectionDropped, EngineError, RequestTimeout
from engine.ledger import statements
from engine.ledger.reconcile import reconcile
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.request.responses import VideoListItem
from engine.submitter.control import RunControl, utc_clock
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.stats import PoolStats
from tests.conftest import LedgerSpec
from tests.fake_service import FakeService, Paging, serving
from tests.one_api import OneApi
from tests.test_crash_resume import cli_env, write_contacts
from tests.test_reconcile import T0, campaign_options, job, limiter
from tests.test_sandbox import FakeClock, make_body

FILLERS = 250


@pytest.mark.parametrize("skew", [-4000, -400, -310, -301, 301, 310, 400, 4000])
async def test_a_skewed_service_clock_never_pays_twice(
    tmp_path: Path, store: LedgerSpec, skew: int
) -> None:
    """Every first answer is lost after its video is made; the service's clock is off by
    ``skew`` seconds. Reconcile must find each video, whatever the skew."""
    service = FakeService(clock=lambda: time.time() + skew)
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    async with serving(service) as url:
        report = await run_campaign(campaign_options(jobs, store, url))

    assert report.sent_uncertain == 3
    assert (report.reconciled_found, report.reconciled_absent) == (3, 0)
    assert report.exit_code == 0
    with closing(store.open(create=False)) as ledger:
        jobs_in_ledger = list(ledger.iter_jobs())
    assert {j.status for j in jobs_in_ledger} == {"submitted"}
    assert service.created == {j.callback_id: 1 for j in jobs_in_ledger}
    owner = {v.video_id: v.callback_id for v in service.videos}
    assert all(owner[j.video_id or ""] == j.callback_id for j in jobs_in_ledger)


def seeded(paging: Paging, hidden_at: int | None = None, now: float = T0) -> FakeService:
    """FILLERS videos a second apart, the newest made ``now``; with ``hidden_at``, the
    video of job ``hidden`` takes that place in the newest-first list."""
    service = FakeService(clock=FakeClock(now), paging=paging)
    for i in range(FILLERS):
        position = FILLERS - 1 - i
        service.add("hidden" if position == hidden_at else f"other-{i}", now - position)
    return service


async def reconcile_against(
    service: FakeService, ledger: Ledger
) -> tuple[int, int, int, str | None]:
    async with (
        serving(service) as url,
        HeyGenClient(url, None, clock=service.clock) as client,
    ):
        result = await reconcile(ledger, client, limiter(), grace_s=0, clock=service.clock)
    return result.found, result.absent, result.still_uncertain, result.problem


@pytest.mark.parametrize(
    ("paging", "reason"),
    [
        (Paging.SKIP, "was in one listing and not in the next"),
        (Paging.REPEAT, "showed video v00150 twice"),
        (Paging.SWAP, "is not newest first"),
        (Paging.UNSORTED, "is not newest first"),
    ],
)
async def test_a_listing_that_pages_wrongly_proves_nothing(
    store: LedgerSpec, paging: Paging, reason: str
) -> None:
    """The job never reached the service; a faulty listing must not say so."""
    service = seeded(paging)
    with closing(store.open()) as ledger:
        ledger.transaction(job("absent", "uncertain", attempted_at=T0 - 1000))
        *counts, problem = await reconcile_against(service, ledger)
        record = ledger.get("absent")
    assert counts == [0, 0, 1]
    assert problem is not None
    assert reason in problem
    assert record is not None
    assert record.status == "uncertain"
    assert record.error is not None
    assert reason in record.error
    assert service.created["absent"] == 0


async def test_the_same_listing_paged_truly_proves_absence(store: LedgerSpec) -> None:
    service = seeded(Paging.TRUE)
    with closing(store.open()) as ledger:
        ledger.transaction(job("absent", "uncertain", attempted_at=T0 - 1000))
        assert await reconcile_against(service, ledger) == (0, 1, 0, None)
    # Each listing read the whole window: 3 pages of 100, then 3 of 97.
    assert service.list_requests == 6


async def test_a_video_skipped_at_a_page_boundary_is_found_by_the_second_listing(
    store: LedgerSpec,
) -> None:
    # Position 100 begins page 2 of 100: the faulty paging skips it there, but pages of
    # 97 skip positions 97 and 195 instead.
    service = seeded(Paging.SKIP, hidden_at=100)
    with closing(store.open()) as ledger:
        ledger.transaction(job("hidden", "uncertain", attempted_at=T0 - 1000))
        found = await reconcile_against(service, ledger)
        record = ledger.get("hidden")
    assert found[:3] == (1, 0, 0)
    assert record is not None
    assert (record.status, record.video_id) == ("submitted", "v00149")
    assert service.created["hidden"] == 1


class DatelessLister(OneApi):
    """The fake service's list and status, answered without any ``Date`` header."""

    def __init__(self, service: FakeService) -> None:
        self.service = service

    async def video_list(
        self, token: str | None = None, limit: int = 100
    ) -> tuple[list[VideoListItem], str | None]:
        self.service.list_requests += 1
        videos, token = self.service.page(limit, token)
        items = [VideoListItem(video_id=v.video_id, created_at=int(v.created_at)) for v in videos]
        return items, token

    async def video_status(self, video_id: str) -> RenderStatus:
        video = next(v for v in self.service.videos if v.video_id == video_id)
        return RenderStatus(video_id=video_id, state="completed", callback_id=video.callback_id)

    def service_clock_offset(self) -> float | None:
        return None


class DatedLister(DatelessLister):
    def service_clock_offset(self) -> float | None:
        return 0.0


async def test_without_the_service_clock_only_the_whole_list_proves_absence(
    tmp_path: Path,
) -> None:
    """An attempt after every listed video: with the service's clock known, one page of
    each listing suffices; without it, both are read to the end."""
    pages = {}
    for lister in (DatedLister, DatelessLister):
        service = seeded(Paging.TRUE)
        with closing(Ledger(tmp_path / f"{lister.__name__}.db")) as ledger:
            ledger.transaction(job("absent", "uncertain", attempted_at=T0 + 3600))
            result = await reconcile(
                ledger, lister(service), limiter(), grace_s=0, clock=lambda: T0 + 7200
            )
        assert result.absent == 1
        pages[lister] = service.list_requests
    assert pages == {DatedLister: 2, DatelessLister: 6}


class SlowService(OneApi):
    """Receives a request at once, makes its video ``make_s`` later and drops the
    connection then; lists a video only ``lag_s`` after it is made."""

    def __init__(self, clock: FakeClock, error: EngineError, make_s: float, lag_s: float):
        self.clock = clock
        self.error = error
        self.make_s = make_s
        self.lag_s = lag_s
        self.made: list[float] = []

    async def create_video(self, body: object, idempotency_key: str | None = None) -> str:
        self.clock.now += self.make_s
        self.made.append(self.clock.now)
        raise self.error

    async def video_list(
        self, token: str | None = None, limit: int = 100
    ) -> tuple[list[VideoListItem], str | None]:
        shown = [at for at in self.made if at + self.lag_s <= self.clock.now]
        return [VideoListItem(video_id="v1", created_at=int(at)) for at in shown], None

    async def video_status(self, video_id: str) -> RenderStatus:
        return RenderStatus(video_id=video_id, state="completed", callback_id="slow")

    def service_clock_offset(self) -> float | None:
        return 0.0


@pytest.mark.parametrize(
    "error", [ConnectionDropped("dropped"), RequestTimeout("no answer in time")]
)
async def test_the_grace_counts_from_the_moment_the_error_came_back(
    tmp_path: Path, error: EngineError
) -> None:
    """Grace 5 s, list lag 4 s, the video made 3 s after receipt as the error comes back:
    at +6 s it is not listed yet, and the job must not be taken for absent."""
    clock = FakeClock(T0)
    service = SlowService(clock, error, make_s=3, lag_s=4)
    path = tmp_path / "l.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction([statements.insert_job("slow", 1, "pending", {}, "sha", None)])
    writer = BatchWriter(path)
    writer.start()
    submitter = Submitter(service, limiter(), writer, RunControl(), 6, PoolStats(), clock=clock)
    body = make_body("slow")
    status = await submitter.submit(SubmitItem("slow", body, "sha", body_json=json.dumps(body)))
    await writer.close()
    assert status == "uncertain"

    with closing(Ledger(path)) as ledger:
        record = ledger.get("slow")
        assert record is not None
        assert record.sent_at == T0 + 3
        clock.now = T0 + 6
        early = await reconcile(ledger, service, limiter(), grace_s=5, clock=clock)
        clock.now = T0 + 8
        late = await reconcile(ledger, service, limiter(), grace_s=5, clock=clock)
        record = ledger.get("slow")
    assert (early.absent, early.still_uncertain) == (0, 1)
    assert late.found == 1
    assert record is not None
    assert (record.status, record.video_id) == ("submitted", "v1")
    assert len(service.made) == 1


async def test_the_reconcile_command_prints_why_absence_is_not_proven(tmp_path: Path) -> None:
    now = time.time()
    # Out of order on the first page: found before any status look-up, which the
    # command makes at 1 a second.
    service = seeded(Paging.UNSORTED, now=now)
    service.clock = time.time
    ledger_path = tmp_path / "l.db"
    with closing(Ledger(ledger_path)) as ledger:
        ledger.transaction(job("absent", "uncertain", attempted_at=now - 1000))
    async with serving(service) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "engine", "reconcile", "--ledger", str(ledger_path), "--base-url", url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, err.decode()
    assert "0 proven absent" in out.decode()
    assert "Absence not proven: the service's list is not newest first" in out.decode()
    with closing(Ledger(ledger_path)) as ledger:
        record = ledger.get("absent")
    assert record is not None
    assert record.status == "uncertain"


async def test_a_request_cancelled_in_flight_counts_its_grace_from_the_cancellation(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    started = asyncio.Event()

    class Hanging(OneApi):
        async def create_video(self, body: object, idempotency_key: str | None = None) -> str:
            clock.now += 7
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    path = tmp_path / "l.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction([statements.insert_job("hung", 1, "pending", {}, "sha", None)])
    writer = BatchWriter(path)
    writer.start()
    submitter = Submitter(Hanging(), limiter(), writer, RunControl(), 6, PoolStats(), clock=clock)
    body = make_body("hung")
    task = asyncio.create_task(
        submitter.submit(SubmitItem("hung", body, "sha", body_json=json.dumps(body)))
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.close()
    with closing(Ledger(path)) as ledger:
        record = ledger.get("hung")
    assert record is not None
    assert (record.status, record.attempted_at, record.sent_at) == ("uncertain", T0, T0 + 7)


async def test_the_reconcile_command_says_when_a_job_too_recent_can_be_settled(
    tmp_path: Path,
) -> None:
    now = time.time()
    # Nothing listed: the listing is complete at once, and only the grace is missing.
    service = FakeService(clock=time.time)
    ledger_path = tmp_path / "l.db"
    with closing(Ledger(ledger_path)) as ledger:
        ledger.transaction(job("recent", "uncertain", attempted_at=now))
    async with serving(service) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "engine", "reconcile", "--ledger", str(ledger_path), "--base-url", url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="600"),
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, err.decode()
    text = out.decode()
    assert "1 still uncertain" in text
    assert "1 were sent too recently to be proven absent" in text
    # The grace counts from the attempt: about ten minutes from now.
    come_back = text.split("run `reconcile` again after ")[1].split(" UTC")[0]
    assert come_back in {utc_clock(now + s).split(" UTC")[0] for s in range(598, 603)}
