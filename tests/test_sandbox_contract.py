"""The sandbox and the documented shapes (CONTRACT section 6) cannot drift apart.

Each test makes one client call twice: against a running sandbox, and against an
aioresponses fixture holding the documented answer. Both must parse the same way with
the engine's own readers, and the sandbox's JSON must have exactly the documented keys
and value kinds. aioresponses patches every ClientSession inside its context, so the
sandbox half always runs outside it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from engine.errors import (
    BadRequest,
    KeyRefused,
    OutOfCredit,
    RateLimited,
    StatusError,
    make_status_error,
)
from engine.request import parse_video_id, parse_video_list, parse_video_status
from engine.sandbox import SandboxConfig, running_sandbox

DOC_BASE = "https://api.heygen.test"
DOC_VIDEO_ID = "4f1b6c2a9d8e4b7f8a6c5d4e3f2a1b0c"
DOC_CREATED_AT = 1_700_000_000

BODY: dict[str, Any] = {
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "Brent_sitting_office_front"},
            "voice": {"type": "text", "input_text": "Welcome to HeyGen API", "voice_id": "v1"},
        }
    ],
    "dimension": {"width": 1920, "height": 1080},
    "callback_id": "row-42",
    "title": "Welcome",
}

# --- the documented answers ---------------------------------------------------------------

DOC_CREATED = {"error": None, "data": {"video_id": DOC_VIDEO_ID}}


def doc_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "data": None}


DOC_NOT_FOUND = {"code": 400599, "message": "Video not found"}


def doc_status(status: str) -> dict[str, Any]:
    done = status == "completed"
    url = f"https://files.heygen.test/{DOC_VIDEO_ID}.%s?expires=1700604800"
    return {
        "code": 100,
        "data": {
            "id": DOC_VIDEO_ID,
            "status": status,
            "video_url": url % "mp4" if done else None,
            "thumbnail_url": url % "jpg" if done else None,
            "gif_url": url % "gif" if done else None,
            "caption_url": None,
            "duration": 1.6 if done else None,
            "callback_id": "row-42",
            "created_at": DOC_CREATED_AT,
            "error": (
                {"code": "render_failed", "message": "Rendering failed", "detail": "…"}
                if status == "failed"
                else None
            ),
        },
        "message": "Success",
    }


def doc_list(count: int, token: str | None) -> dict[str, Any]:
    item = {
        "video_id": DOC_VIDEO_ID,
        "video_title": "Welcome",
        "created_at": DOC_CREATED_AT,
        "status": "completed",
    }
    return {"code": 100, "data": {"videos": [item] * count, "token": token}}


# --- one client, two servers --------------------------------------------------------------


class _MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp
    3.14 requires (pnuckowski/aioresponses#289); a request it answers was never
    written, so a writer that reports no output is the truth."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    retry_after: str | None


Call = Callable[[aiohttp.ClientSession, str], Awaitable[Answer]]


async def _answer(resp: aiohttp.ClientResponse) -> Answer:
    return Answer(resp.status, await resp.json(), resp.headers.get("Retry-After"))


def generate(body: Any = BODY, key: str | None = None) -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        headers = {"X-Api-Key": key} if key else {}
        async with session.post(f"{base}/v2/video/generate", json=body, headers=headers) as r:
            return await _answer(r)

    return call


def video_status(video_id: str) -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        url = f"{base}/v1/video_status.get"
        async with session.get(url, params={"video_id": video_id}) as r:
            return await _answer(r)

    return call


def video_list(limit: int, token: str | None = None) -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        params: dict[str, str | int] = {"limit": limit} | ({"token": token} if token else {})
        async with session.get(f"{base}/v1/video.list", params=params) as r:
            return await _answer(r)

    return call


async def from_fixture(
    call: Call, method: str, path: str, status: int, payload: Any, retry_after: str | None = None
) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after else None
    with aioresponses() as mocked:
        pattern = re.compile(re.escape(f"{DOC_BASE}{path}") + r"(\?.*)?$")
        mocked.add(
            pattern,
            method,
            status=status,
            payload=payload,
            headers=headers,
            response_class=_MockedResponse,
        )
        async with aiohttp.ClientSession() as session:
            return await call(session, DOC_BASE)


def shape(value: Any) -> Any:
    """Keys and value kinds, not values: what both servers must agree on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    if isinstance(value, bool) or value is None:
        return value if value is None else "bool"
    return "number" if isinstance(value, int | float) else type(value).__name__


def status_error(answer: Answer) -> StatusError:
    retry = float(answer.retry_after) if answer.retry_after else None
    return make_status_error(answer.status, answer.body, retry)


def assert_same_error(real: Answer, doc: Answer, kind: type[StatusError]) -> None:
    assert real.status == doc.status
    assert shape(real.body) == shape(doc.body)
    real_error, doc_error_ = status_error(real), status_error(doc)
    assert isinstance(real_error, kind)
    assert isinstance(doc_error_, kind)
    assert real_error.code == doc_error_.code
    assert parse_video_id(real.body) is None
    assert parse_video_id(doc.body) is None


class Clock:
    def __init__(self) -> None:
        self.now = float(DOC_CREATED_AT)

    def __call__(self) -> float:
        return self.now


# --- generate -----------------------------------------------------------------------------


async def test_created() -> None:
    async with running_sandbox() as sb, aiohttp.ClientSession() as session:
        real = await generate()(session, sb.base_url)
    doc = await from_fixture(generate(), "POST", "/v2/video/generate", 200, DOC_CREATED)
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    real_id, doc_id = parse_video_id(real.body), parse_video_id(doc.body)
    assert real_id is not None
    assert doc_id is not None
    assert len(real_id) == len(doc_id) == 32


@pytest.mark.parametrize(
    ("config", "call", "status", "doc", "retry_after", "kind"),
    [
        (
            {},
            generate({"video_inputs": []}),
            400,
            doc_error("invalid_parameter", "video_inputs: must have 1 to 50 entries, got 0"),
            None,
            BadRequest,
        ),
        (
            {"api_key": "right"},
            generate(key="wrong"),
            401,
            doc_error("unauthorized", "Invalid API key"),
            None,
            KeyRefused,
        ),
        (
            {"rate_429": 1.0},
            generate(),
            429,
            doc_error("rate_limit_exceeded", "Too many requests"),
            "1",
            RateLimited,
        ),
        (
            {"credit_limit": 0},
            generate(),
            400,
            doc_error("insufficient_credit", "Insufficient credit"),
            None,
            OutOfCredit,
        ),
    ],
    ids=["invalid", "unauthorized", "rate-limited", "out-of-credit"],
)
async def test_generate_errors(
    config: dict[str, Any],
    call: Call,
    status: int,
    doc: dict[str, Any],
    retry_after: str | None,
    kind: type[StatusError],
) -> None:
    async with running_sandbox(SandboxConfig(**config)) as sb, aiohttp.ClientSession() as s:
        real = await call(s, sb.base_url)
    fixture = await from_fixture(call, "POST", "/v2/video/generate", status, doc, retry_after)
    assert real.retry_after == fixture.retry_after
    assert_same_error(real, fixture, kind)
    if kind is RateLimited:
        assert [_retry_after(real), _retry_after(fixture)] == [1.0, 1.0]


def _retry_after(answer: Answer) -> float | None:
    error = status_error(answer)
    assert isinstance(error, RateLimited)
    return error.retry_after


# --- status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "failure_ratio", "expected"),
    [(0, 0, "pending"), (1, 0, "processing"), (5, 0, "completed"), (5, 1, "failed")],
)
async def test_video_status(elapsed: float, failure_ratio: float, expected: str) -> None:
    clock = Clock()
    config = SandboxConfig(render_seconds=2, render_failure_ratio=failure_ratio)
    async with (
        running_sandbox(config, clock=clock) as sb,
        aiohttp.ClientSession() as session,
    ):
        created = await generate()(session, sb.base_url)
        video_id = parse_video_id(created.body)
        assert video_id is not None
        clock.now += elapsed
        real = await video_status(video_id)(session, sb.base_url)
    doc = await from_fixture(
        video_status(DOC_VIDEO_ID), "GET", "/v1/video_status.get", 200, doc_status(expected)
    )
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    real_status, doc_status_ = parse_video_status(real.body), parse_video_status(doc.body)
    assert real_status.status == doc_status_.status == expected
    assert real_status.id == video_id
    assert real_status.callback_id == doc_status_.callback_id == "row-42"
    assert real_status.created_at == doc_status_.created_at
    unset = {name for name, value in real_status if value is None}
    assert unset == {name for name, value in doc_status_ if value is None}
    if expected == "failed":
        assert real_status.error is not None
        assert doc_status_.error is not None
        assert real_status.error.code == doc_status_.error.code


async def test_unknown_video() -> None:
    call = video_status("0" * 32)
    async with running_sandbox() as sb, aiohttp.ClientSession() as session:
        real = await call(session, sb.base_url)
    doc = await from_fixture(call, "GET", "/v1/video_status.get", 404, DOC_NOT_FOUND)
    assert real.status == doc.status == 404
    assert shape(real.body) == shape(doc.body)
    for answer in (real, doc):
        with pytest.raises(ValueError, match="no data"):
            parse_video_status(answer.body)
    assert type(status_error(real)) is type(status_error(doc)) is BadRequest
    assert status_error(real).code == status_error(doc).code == "400599"


# --- list ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "more"), [(2, True), (5, False)])
async def test_video_list(limit: int, more: bool) -> None:
    clock = Clock()
    async with (
        running_sandbox(clock=clock) as sb,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(3):
            clock.now += 1
            await generate()(session, sb.base_url)
        real = await video_list(limit)(session, sb.base_url)
    count = min(limit, 3)
    doc_body = doc_list(count, "next-page" if more else None)
    doc = await from_fixture(video_list(limit), "GET", "/v1/video.list", 200, doc_body)
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    real_items, real_token = parse_video_list(real.body)
    doc_items, doc_token = parse_video_list(doc.body)
    assert len(real_items) == len(doc_items) == count
    assert (real_token is not None) == (doc_token is not None) == more
    assert real_items[0].video_title == doc_items[0].video_title == "Welcome"
