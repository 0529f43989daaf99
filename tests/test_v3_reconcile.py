"""Reconcile of uncertain v3 jobs: within the service's 24-hour replay window by
resending the job's Idempotency-Key (no grace, no listing); after it, left uncertain,
saying why, since v3 videos name no callback_id."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter

from engine.api.client import HeyGenClient
from engine.ledger import statements
from engine.ledger.reconcile import reconcile
from engine.ledger.store import Ledger
from engine.prepare.keys import idempotency_key
from tests.conftest import LedgerSpec
from tests.test_ledger_store import make_older_ledger
from tests.threaded_sandbox import Handler, threaded_sandbox

BODY = {
    "type": "avatar",
    "avatar_id": "Brent_sitting_office_front",
    "voice_id": "ff2ecc8fbdef4273a28bed7b5e35bb57",
    "script": "Hi Ada",
}
HOUR = 3600.0


def uncertain_v3_job(ledger: Ledger, key: str, first_sent_ago_s: float) -> None:
    at = time.time() - first_sent_ago_s
    text = json.dumps({**BODY, "callback_id": key})
    ledger.transaction(
        [
            statements.insert_submitting(
                key, 1, {"id": key}, None, text, "sha", key, at, None, "v3"
            ),
            statements.mark_outcome(key, "uncertain", 1, "connection dropped", at),
        ]
    )


async def reconciled(ledger: Ledger, url: str) -> Any:
    async with HeyGenClient(url, None) as client:
        return await reconcile(ledger, client, AsyncLimiter(100, 1), grace_s=HOUR)


async def test_a_young_uncertain_job_is_settled_at_once_by_its_key(store: LedgerSpec) -> None:
    """Twice: the service made the video (its answer was lost), and it never got it."""
    with closing(store.open()) as ledger, threaded_sandbox() as (url, state):
        campaign = ledger.campaign_id
        assert campaign is not None
        uncertain_v3_job(ledger, "lost-answer", HOUR)
        uncertain_v3_job(ledger, "never-arrived", 2 * HOUR)
        async with HeyGenClient(url, None, api="v3") as client:
            made = await client.create_video(
                json.dumps(BODY), idempotency_key=idempotency_key(campaign, "lost-answer")
            )
        result = await reconciled(ledger, url)
        created = dict(state.counters.created_by_idempotency_key)
        lists = state.counters.v3_list_requests + state.counters.list_requests
        lost, fresh = ledger.get("lost-answer"), ledger.get("never-arrived")
    assert (result.found, result.still_uncertain) == (2, 0)
    assert lost is not None
    assert (lost.status, lost.video_id) == ("submitted", made)
    assert fresh is not None
    assert fresh.status == "submitted"
    assert set(created.values()) == {1}  # one video per key: the lost one replayed
    assert lists == 0


async def test_a_job_first_sent_over_a_day_ago_stays_uncertain_saying_why(
    store: LedgerSpec,
) -> None:
    with closing(store.open()) as ledger, threaded_sandbox() as (url, state):
        uncertain_v3_job(ledger, "old", 25 * HOUR)
        result = await reconciled(ledger, url)
        sent = state.counters.v3_requests
        job = ledger.get("old")
    assert (result.found, result.still_uncertain) == (0, 1)
    assert result.grace_ends == []  # waiting would prove nothing more
    assert sent == 0  # a replay the service has forgotten would make a second video
    assert job is not None
    assert job.status == "uncertain"
    assert job.error is not None
    assert "cannot be proven" in job.error
    assert job.error.startswith("connection dropped")


async def test_a_replay_the_service_refuses_leaves_the_job_uncertain_saying_why(
    store: LedgerSpec,
) -> None:
    """By HeyGen's rules a refused replay means nothing was made; but failed would let
    --retry-failed send it again, so a refusal from anything on the way must not."""

    async def refuse(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        error = {"code": "avatar_not_found", "message": "no such avatar"}
        return web.json_response({"error": error}, status=404)

    with closing(store.open()) as ledger, threaded_sandbox(refuse) as (url, _):
        uncertain_v3_job(ledger, "refused", HOUR)
        result = await reconciled(ledger, url)
        job = ledger.get("refused")
    assert (result.failed, result.still_uncertain) == (0, 1)
    assert job is not None
    assert job.status == "uncertain"
    assert "no such avatar" in (job.error or "")
    assert "HeyGen's dashboard" in (job.error or "")


async def test_a_replay_still_in_progress_leaves_the_job_for_the_next_reconcile(
    store: LedgerSpec,
) -> None:
    async def busy(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        error = {"code": "request_in_progress", "message": "still processing"}
        return web.json_response({"error": error}, status=409)

    with closing(store.open()) as ledger, threaded_sandbox(busy) as (url, _):
        uncertain_v3_job(ledger, "busy", HOUR)
        result = await reconciled(ledger, url)
        job = ledger.get("busy")
    assert result.still_uncertain == 1
    assert len(result.grace_ends) == 1  # the end of a run replays it again shortly
    assert job is not None
    assert job.status == "uncertain"
    assert "request_in_progress" in (job.error or "")


def test_jobs_of_a_ledger_from_before_v3_are_v2_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    work = [statements.insert_job("old", 1, "pending", {"id": "old"}, "sha", None)]
    make_older_ledger(path, monkeypatch, work)
    with closing(Ledger(path)) as ledger:
        job = ledger.get("old")
    assert job is not None
    assert (job.api, job.first_attempted_at, job.video_page_url) == ("v2", None, None)
