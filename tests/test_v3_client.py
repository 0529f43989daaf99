"""The v3 dialect through the real transport, with aioresponses answering: the
Idempotency-Key header, the envelope's message, the answers that stop a run, bulk
status and list paging; and the retry decisions idempotent creates allow."""

from __future__ import annotations

import re
from typing import Any

import pytest
from yarl import URL

from engine.api.client import HeyGenClient
from engine.errors import (
    BadRequest,
    ConnectionDropped,
    EngineError,
    OutOfCredit,
    RequestInProgress,
    RequestTimeout,
    ServerError,
    UnreadableAnswer,
)
from engine.submitter.retry import Step, may_have_made, next_step
from tests.conftest import FixedAioresponses

BASE = "http://heygen.test"
VIDEOS = BASE + "/v3/videos"
KEY = "sk-very-secret-0123456789"
IDEMPOTENCY = "0123456789ab:" + "f" * 64


async def create(body: str = '{"type": "avatar"}') -> str:
    async with HeyGenClient(BASE, KEY, api="v3") as client:
        return await client.create_video(body, idempotency_key=IDEMPOTENCY)


async def create_error() -> EngineError:
    with pytest.raises(EngineError) as caught:
        await create()
    assert KEY not in str(caught.value)
    return caught.value


async def test_the_create_carries_the_key_and_reads_the_video_id(http: FixedAioresponses) -> None:
    http.post(VIDEOS, payload={"data": {"video_id": "v1", "status": "waiting"}})
    assert await create() == "v1"
    (request,) = http.requests[("POST", URL(VIDEOS))]
    assert request.kwargs["headers"]["Idempotency-Key"] == IDEMPOTENCY
    assert request.kwargs["data"] == b'{"type": "avatar"}'


@pytest.mark.parametrize(
    ("status", "error", "kind", "message"),
    [
        (409, "request_in_progress", RequestInProgress, "still processing"),
        (402, "insufficient_credit", OutOfCredit, "still processing"),
        (429, "trial_video_limit_exceeded", OutOfCredit, "still processing"),
        (400, "invalid_parameter", BadRequest, "still processing"),
        (404, "avatar_not_found", BadRequest, "still processing"),
        (500, "internal_error", ServerError, "still processing"),
    ],
)
async def test_the_v3_envelope_is_read_for_its_code_and_message(
    http: FixedAioresponses, status: int, error: str, kind: type[EngineError], message: str
) -> None:
    envelope = {"error": {"code": error, "message": message, "param": "script", "doc_url": "u"}}
    http.post(VIDEOS, status=status, payload=envelope)
    caught = await create_error()
    assert type(caught) is kind
    assert str(caught) == f"HTTP {status} {error}: {message}"


async def test_a_success_naming_no_video_is_uncertain_even_with_a_key(
    http: FixedAioresponses,
) -> None:
    http.post(VIDEOS, payload={"data": {"status": "waiting"}})
    caught = await create_error()
    assert isinstance(caught, UnreadableAnswer)
    assert next_step(caught, idempotent=True) is Step.UNCERTAIN


async def test_bulk_status_and_list_paging(http: FixedAioresponses) -> None:
    http.get(
        re.compile(r"^http://heygen\.test/v3/videos/statuses\?video_ids=a(,|%2C)b$"),
        payload={
            "data": [
                {"video_id": "a", "status": "queued"},
                {"video_id": "b", "status": "not_found"},
            ],
            "has_more": False,
        },
    )
    page: dict[str, Any] = {"id": "v9", "status": "completed", "created_at": 5, "title": "Ada"}
    http.get(
        re.compile(r"^http://heygen\.test/v3/videos\?limit=1&title=Ada$"),
        payload={"data": [page], "has_more": True, "next_token": "t2"},
    )
    http.get(
        re.compile(r"^http://heygen\.test/v3/videos\?limit=1&title=Ada&token=t2$"),
        payload={"data": [], "has_more": False, "next_token": None},
    )
    async with HeyGenClient(BASE, KEY, api="v3") as client:
        found = await client.video_statuses(["a", "b"])
        first, token = await client.video_list(None, 1, "Ada")
        rest, end = await client.video_list(token, 1, "Ada")
    assert found["a"] is not None
    assert found["a"].state == "pending"
    assert found["b"] is None
    assert [(i.video_id, i.created_at, i.video_title) for i in first] == [("v9", 5, "Ada")]
    assert (token, rest, end) == ("t2", [], None)


async def test_a_detail_that_cannot_be_read_is_a_502_to_ask_again(
    http: FixedAioresponses,
) -> None:
    http.get(VIDEOS + "/v1", payload={"data": {"id": "v1", "status": "exploded"}})
    async with HeyGenClient(BASE, KEY, api="v3") as client:
        with pytest.raises(ServerError) as caught:
            await client.video_status("v1")
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("error", "v2", "v3"),
    [
        (ServerError(500, None, None, "boom"), Step.UNCERTAIN, Step.RETRY),
        (ServerError(502, None, None, "bad gateway"), Step.UNCERTAIN, Step.RETRY),
        (RequestTimeout("no answer"), Step.UNCERTAIN, Step.RETRY),
        (ConnectionDropped("dropped"), Step.UNCERTAIN, Step.RETRY),
        (RequestInProgress(409, None, "request_in_progress", "wait"), Step.UNCERTAIN, Step.RETRY),
        (BadRequest(400, None, "invalid_parameter", "no"), Step.FAILED, Step.FAILED),
    ],
)
def test_idempotent_creates_retry_what_may_have_arrived(
    error: EngineError, v2: Step, v3: Step
) -> None:
    assert next_step(error, idempotent=False) is v2
    assert next_step(error, idempotent=True) is v3


def test_what_may_have_made_a_video() -> None:
    assert may_have_made(RequestTimeout("no answer"))
    assert may_have_made(ServerError(504, None, None, "timeout"))
    assert not may_have_made(BadRequest(400, None, None, "no"))
    assert may_have_made(RequestInProgress(409, None, "request_in_progress", "wait"))
    assert may_have_made(ServerError(503, None, None, "a proxy's reset"))
    assert not may_have_made(ServerError(505, None, None, "HTTP version"))
