"""The pool on an API with idempotent creates: an attempt that may have made the video
is retried with its key, and a job the run stops retrying after one is left
``uncertain`` (for a replay), never ``pending`` or ``failed``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from engine.api.port import ApiFeatures
from engine.api.v3 import V3Dialect
from engine.errors import (
    BadRequest,
    EngineError,
    KeyRefused,
    RequestInProgress,
    RequestTimeout,
    ServerError,
)
from engine.ledger import statements
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.stats import PoolStats
from tests.one_api import OneApi
from tests.test_reconcile import limiter

KEY = "0123456789ab:" + "a" * 64


class Scripted(OneApi):
    """Answers each attempt from a script: an error to raise, else a video."""

    features: ApiFeatures = V3Dialect.features

    def __init__(self, script: list[EngineError | None]) -> None:
        self.script: Iterator[EngineError | None] = iter(script)
        self.keys: list[str | None] = []

    async def create_video(self, body: str, *, idempotency_key: str | None = None) -> str:
        self.keys.append(idempotency_key)
        error = next(self.script)
        if error is not None:
            raise error
        return "v-1"


async def send(tmp_path: Path, script: list[EngineError | None], attempts: int = 6) -> tuple:
    path = tmp_path / "l.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction([statements.insert_job("j", 1, "pending", {}, "sha", None)])
    writer = BatchWriter(path)
    writer.start()
    service = Scripted(script)
    submitter = Submitter(service, limiter(), writer, RunControl(), attempts, PoolStats())
    item = SubmitItem("j", {"type": "avatar"}, "sha", body_json="{}", api="v3", idempotency_key=KEY)
    status = await submitter.submit(item)
    await writer.close()
    with closing(Ledger(path)) as ledger:
        record = ledger.get("j")
    assert record is not None
    return status, record, service.keys


@pytest.mark.usefixtures("no_backoff")
async def test_a_timeout_and_a_500_are_retried_with_the_same_key(tmp_path: Path) -> None:
    timeout, fault = RequestTimeout("no answer"), ServerError(500, None, None, "boom")
    status, record, keys = await send(tmp_path, [timeout, fault, None])
    assert (status, record.status) == ("submitted", "submitted")
    assert (record.video_id, record.api) == ("v-1", "v3")
    assert keys == [KEY, KEY, KEY]


@pytest.mark.usefixtures("no_backoff")
async def test_request_in_progress_spends_no_attempt(tmp_path: Path) -> None:
    busy = RequestInProgress(409, None, "request_in_progress", "wait")
    status, record, keys = await send(tmp_path, [busy, busy, None], attempts=1)
    assert (status, record.attempts) == ("submitted", 1)
    assert keys == [KEY] * 3


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    "last",
    [
        RequestTimeout("no answer again"),  # out of attempts
        KeyRefused(401, None, "unauthorized", "bad key"),  # the run stops
    ],
)
async def test_a_job_stopped_after_an_attempt_that_may_have_made_it_is_uncertain(
    tmp_path: Path, last: EngineError
) -> None:
    status, record, _ = await send(tmp_path, [RequestTimeout("no answer"), last], attempts=2)
    assert status == "uncertain"
    assert record.status == "uncertain"
    assert record.sent_at is not None


@pytest.mark.usefixtures("no_backoff")
async def test_a_refusal_after_a_fault_that_made_nothing_fails_the_job(tmp_path: Path) -> None:
    refused = BadRequest(400, None, "invalid_parameter", "no")
    never_taken = ServerError(505, None, None, "HTTP version not supported")
    status, _, _ = await send(tmp_path, [never_taken, refused])
    assert status == "failed"
