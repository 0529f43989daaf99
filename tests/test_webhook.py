"""webhook serve: signed deliveries confirmed by a status call, everything else refused."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from engine.api.port import RenderStatus, render_state
from engine.delivery.signature import sign
from engine.delivery.webhook import create_webhook_app, webhook_runner
from engine.errors import RequestTimeout
from engine.ledger import render_writes
from engine.ledger.store import Ledger
from tests.conftest import LedgerSpec
from tests.test_reconcile import job

SECRET = "whsec_test-secret-value"


@dataclass
class FakeStatus:
    """The service's truth about each video, and the status calls asked of it."""

    states: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False

    def for_api(self, api: str) -> FakeStatus:
        return self

    async def video_status(self, video_id: str) -> RenderStatus:
        self.calls.append(video_id)
        if self.down:
            raise RequestTimeout("no answer in time")
        state = self.states[video_id]
        done = state == "completed"
        failed = state == "failed"
        return RenderStatus(
            video_id=video_id,
            state=render_state(state),
            video_url=f"https://files.example/{video_id}.mp4" if done else None,
            thumbnail_url=f"https://files.example/{video_id}.jpg" if done else None,
            callback_id="cb-" + video_id,
            failure_code="x" if failed else None,
            failure_message="render failed" if failed else None,
        )


@asynccontextmanager
async def receiver(
    store: LedgerSpec, status: FakeStatus
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, Ledger]]:
    ledger = store.open()
    ledger.transaction(
        job("k1", "submitted", line=1, callback_id="cb-v1", video_id="v1")
        + job("k2", "submitted", line=2, callback_id="cb-v2", video_id="v2")
    )
    runner = webhook_runner(create_webhook_app(ledger, status, SECRET))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            yield f"http://{host}:{port}/webhook", session, ledger
    finally:
        await runner.cleanup()
        ledger.close()


def event(video_id: str, kind: str = "success") -> bytes:
    data = {"video_id": video_id, "callback_id": "cb-" + video_id}
    data.update({"url": "https://x/y.mp4"} if kind == "success" else {"msg": "failed"})
    return json.dumps({"event_type": f"avatar_video.{kind}", "event_data": data}).encode()


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    if headers is None:
        headers = {"signature": sign(SECRET, body)}
    async with session.post(url, data=body, headers=headers) as answer:
        return answer.status, await answer.text()


def snapshot(ledger: Ledger) -> list[tuple[object, ...]]:
    return [(j.key, j.video_status, j.video_url, j.updated_at) for j in ledger.iter_jobs()]


async def test_options_is_answered_at_once(store: LedgerSpec) -> None:
    status = FakeStatus()
    async with receiver(store, status) as (url, session, _), session.options(url) as answer:
        assert answer.status == 200
    assert status.calls == []


@pytest.mark.parametrize("header", ["signature", "x-heygen-signature", "X-HeyGen-Signature"])
async def test_a_signed_success_is_confirmed_then_written(store: LedgerSpec, header: str) -> None:
    status = FakeStatus({"v1": "completed"})
    async with receiver(store, status) as (url, session, ledger):
        body = event("v1")
        code, _ = await post(session, url, body, {header: sign(SECRET, body)})
        assert code == 200
        record = ledger.get("k1")
        assert record is not None
        assert (record.video_status, record.video_url) == (
            "completed",
            "https://files.example/v1.mp4",
        )
        assert status.calls == ["v1"]


async def test_the_status_call_is_the_truth_not_the_event(store: LedgerSpec) -> None:
    # A .success for a video the service says is still processing writes processing.
    status = FakeStatus({"v1": "processing"})
    async with receiver(store, status) as (url, session, ledger):
        assert (await post(session, url, event("v1")))[0] == 200
        record = ledger.get("k1")
        assert record is not None
        assert record.video_status == "processing"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"signature": ""},
        {"signature": sign("another-secret", event("v1"))},
        {"signature": sign(SECRET, event("v2"))},  # a signature of another body
        {"x-heygen-signature": "zz" * 32},
    ],
    ids=["missing", "empty", "wrong-secret", "other-body", "garbage"],
)
async def test_unsigned_or_mis_signed_is_401_and_writes_nothing(
    store: LedgerSpec, headers: dict[str, str]
) -> None:
    status = FakeStatus({"v1": "completed"})
    async with receiver(store, status) as (url, session, ledger):
        before = snapshot(ledger)
        code, _ = await post(session, url, event("v1"), headers)
        assert code == 401
        assert snapshot(ledger) == before
    assert status.calls == []


async def test_replayed_and_late_deliveries_change_nothing(store: LedgerSpec) -> None:
    status = FakeStatus({"v1": "completed"})
    async with receiver(store, status) as (url, session, ledger):
        assert (await post(session, url, event("v1")))[0] == 200
        settled = snapshot(ledger)
        for body in (event("v1"), event("v1"), event("v1", "fail")):
            assert (await post(session, url, body))[0] == 200
        assert snapshot(ledger) == settled
    assert status.calls == ["v1"]  # a settled video costs no more status calls


def test_a_completed_render_never_goes_back(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(job("k1", "submitted", video_id="v1"))
    ledger.transaction([render_writes.confirmed_render("k1", "completed", "u", "t", None)])
    ledger.transaction([render_writes.confirmed_render("k1", "processing", None, None, None)])
    record = ledger.get("k1")
    assert record is not None
    assert (record.video_status, record.video_url) == ("completed", "u")
    ledger.close()


async def test_a_failed_render_is_recorded_with_its_reason(store: LedgerSpec) -> None:
    status = FakeStatus({"v2": "failed"})
    async with receiver(store, status) as (url, session, ledger):
        assert (await post(session, url, event("v2", "fail")))[0] == 200
        record = ledger.get("k2")
        assert record is not None
        assert record.video_status == "failed"
        assert record.error is not None
        assert "render failed" in record.error


async def test_an_unknown_video_is_200_and_writes_nothing(store: LedgerSpec) -> None:
    status = FakeStatus({"other": "completed"})
    async with receiver(store, status) as (url, session, ledger):
        before = snapshot(ledger)
        code, _ = await post(session, url, event("other"))
        assert code == 200
        assert snapshot(ledger) == before
    assert status.calls == []


async def test_a_body_of_10_mb_is_413_and_writes_nothing(store: LedgerSpec) -> None:
    status = FakeStatus({"v1": "completed"})
    async with receiver(store, status) as (url, session, ledger):
        before = snapshot(ledger)
        huge = b'{"event_type": "avatar_video.success", "pad": "' + b"x" * 10_000_000 + b'"}'
        signed = {"signature": sign(SECRET, huge)}
        async with session.post(url, data=io.BytesIO(huge), headers=signed) as answer:
            assert answer.status == 413
        assert snapshot(ledger) == before
    assert status.calls == []


async def test_a_body_that_is_not_an_event_is_400(store: LedgerSpec) -> None:
    status = FakeStatus()
    async with receiver(store, status) as (url, session, _):
        for body in (b"not json", b"[]", b'{"event_type": "avatar_video.success"}'):
            assert (await post(session, url, body))[0] == 400


async def test_no_answer_from_the_service_is_503_so_heygen_sends_again(store: LedgerSpec) -> None:
    status = FakeStatus({"v1": "completed"}, down=True)
    async with receiver(store, status) as (url, session, ledger):
        before = snapshot(ledger)
        assert (await post(session, url, event("v1")))[0] == 503
        assert snapshot(ledger) == before


async def test_the_secret_is_never_logged(
    store: LedgerSpec, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status = FakeStatus({"v1": "completed"}, down=True)
    async with receiver(store, status) as (url, session, _):
        await post(session, url, event("v1"), {"signature": "bad"})
        await post(session, url, event("v1"))
        await post(session, url, event("unknown"))
    assert caplog.records
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_a_database_connection_lost_is_made_again_and_one_out_of_reach_is_503(
    postgres_store: LedgerSpec, pg_server: str, pg_url: str
) -> None:
    """An always-on receiver outlives its database connection (a restart, a failover):
    the delivery is recorded on a new one; while none can be made it answers 503, so
    HeyGen sends it again, never a 500."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    status = FakeStatus({"v1": "completed", "v2": "completed"})
    name = conninfo_to_dict(pg_url)["dbname"]
    drop = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    async with receiver(postgres_store, status) as (url, session, _):
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(drop)
            assert (await post(session, url, event("v1")))[0] == 200
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                admin.execute(drop)
                assert (await post(session, url, event("v2")))[0] == 503
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await post(session, url, event("v2")))[0] == 200
    check = postgres_store.open()
    assert [(j.key, j.video_status) for j in check.iter_jobs()] == [
        ("k1", "completed"),
        ("k2", "completed"),
    ]
