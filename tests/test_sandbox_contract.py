"""The sandbox and the documented shapes (CONTRACT section 6, HEYGEN-V3.md) cannot drift.

Each test makes one client call twice, for each API it applies to (V2 and v3): against
a running sandbox, and against an aioresponses fixture holding the documented answer.
Both must parse the same way with the engine's own readers, and the sandbox's JSON must
have exactly the documented keys and value kinds. aioresponses patches every
ClientSession inside its context, so the sandbox half always runs outside it.
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
from engine.request import VideoStatus, parse_video_id, parse_video_list, parse_video_status
from engine.request.v3 import (
    V3VideoDetail,
    parse_v3_created,
    parse_v3_list,
    parse_v3_statuses,
    parse_v3_video,
)
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
V3_BODY: dict[str, Any] = {
    "type": "studio",
    "scenes": [
        {
            "type": "avatar_video",
            "input": {
                "type": "avatar",
                "avatar_id": "Brent",
                "script": "Welcome",
                "voice_id": "v1",
            },
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}, "duration": 2},
    ],
    "resolution": "1080p",
    "callback_id": "row-42",
    "title": "Welcome",
}

# --- the documented answers ---------------------------------------------------------------

DOC_CREATED = {"error": None, "data": {"video_id": DOC_VIDEO_ID}}


def doc_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "data": None}


DOC_NOT_FOUND = {"code": 400599, "message": "Video not found"}

DOC_V3_CREATED = {"data": {"video_id": DOC_VIDEO_ID, "status": "waiting", "output_format": "mp4"}}


def doc_v3_error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **({"param": param} if param else {})}}


DOC_V3_NOT_FOUND = doc_v3_error("not_found", "Video not found")


def doc_v3_detail(status: str) -> dict[str, Any]:
    done, failed = status == "completed", status == "failed"
    url = f"https://files.heygen.test/{DOC_VIDEO_ID}.%s?expires=1700604800"
    return {
        "id": DOC_VIDEO_ID,
        "status": status,
        "title": "Welcome",
        "created_at": DOC_CREATED_AT,
        "completed_at": DOC_CREATED_AT + 2 if done or failed else None,
        "duration": 1.6 if done else None,
        "video_url": url % "mp4" if done else None,
        "captioned_video_url": None,
        "subtitle_url": url % "srt" if done else None,
        "thumbnail_url": url % "jpg" if done else None,
        "gif_url": url % "gif" if done else None,
        "video_page_url": f"https://app.heygen.test/videos/{DOC_VIDEO_ID}",
        "folder_id": None,
        "failure_code": "render_failed" if failed else None,
        "failure_message": "Rendering failed" if failed else None,
    }


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


def doc_v3_list(count: int, token: str | None) -> dict[str, Any]:
    item = doc_v3_detail("completed")
    return {"data": [item] * count, "has_more": token is not None, "next_token": token}


def doc_v3_statuses(words: list[str]) -> dict[str, Any]:
    failed = {"code": "render_failed", "message": "Rendering failed"}
    items = [
        {"video_id": DOC_VIDEO_ID, "status": w, "error": failed if w == "failed" else None}
        for w in words
    ]
    return {"data": items, "has_more": False, "next_token": None}


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


APIS = ("v2", "v3")
CREATE_PATH = {"v2": "/v2/video/generate", "v3": "/v3/videos"}
LIST_PATH = {"v2": "/v1/video.list", "v3": "/v3/videos"}


def generate(body: Any = None, key: str | None = None, api: str = "v2") -> Call:
    sent = body if body is not None else (BODY if api == "v2" else V3_BODY)

    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        headers = {"X-Api-Key": key} if key else {}
        async with session.post(f"{base}{CREATE_PATH[api]}", json=sent, headers=headers) as r:
            return await _answer(r)

    return call


def status_path(video_id: str, api: str) -> str:
    return "/v1/video_status.get" if api == "v2" else f"/v3/videos/{video_id}"


def video_status(video_id: str, api: str = "v2") -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        params = {"video_id": video_id} if api == "v2" else {}
        async with session.get(f"{base}{status_path(video_id, api)}", params=params) as r:
            return await _answer(r)

    return call


def video_statuses(video_ids: list[str]) -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        params = {"video_ids": ",".join(video_ids)}
        async with session.get(f"{base}/v3/videos/statuses", params=params) as r:
            return await _answer(r)

    return call


def video_list(limit: int, token: str | None = None, api: str = "v2") -> Call:
    async def call(session: aiohttp.ClientSession, base: str) -> Answer:
        params: dict[str, str | int] = {"limit": limit} | ({"token": token} if token else {})
        async with session.get(f"{base}{LIST_PATH[api]}", params=params) as r:
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


@pytest.mark.parametrize("api", APIS)
async def test_created(api: str) -> None:
    async with running_sandbox() as sb, aiohttp.ClientSession() as session:
        real = await generate(api=api)(session, sb.base_url)
    documented = DOC_CREATED if api == "v2" else DOC_V3_CREATED
    doc = await from_fixture(generate(api=api), "POST", CREATE_PATH[api], 200, documented)
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    real_id, doc_id = parse_video_id(real.body), parse_video_id(doc.body)
    assert real_id is not None
    assert doc_id is not None
    assert len(real_id) == len(doc_id) == 32
    if api == "v3":
        assert parse_v3_created(real.body) == parse_v3_created(doc.body).model_copy(
            update={"video_id": real_id}
        )


ERROR_CASES = [
    (
        "v2",
        {},
        generate({"video_inputs": []}),
        400,
        doc_error("invalid_parameter", "video_inputs: must have 1 to 50 entries, got 0"),
        None,
        BadRequest,
    ),
    (
        "v3",
        {},
        generate({"type": "studio", "scenes": []}, api="v3"),
        400,
        doc_v3_error("invalid_parameter", "scenes: must have 1 to 50 entries, got 0", "scenes"),
        None,
        BadRequest,
    ),
    *[
        case
        for api, errors in (("v2", doc_error), ("v3", doc_v3_error))
        for case in (
            (
                api,
                {"api_key": "right"},
                generate(key="wrong", api=api),
                401,
                errors("unauthorized", "Invalid API key"),
                None,
                KeyRefused,
            ),
            (
                api,
                {"rate_429": 1.0},
                generate(api=api),
                429,
                errors("rate_limit_exceeded", "Too many requests"),
                "1",
                RateLimited,
            ),
            (
                api,
                {"credit_limit": 0},
                generate(api=api),
                # V2 answers 400 for it; v3 documents 402.
                400 if api == "v2" else 402,
                errors("insufficient_credit", "Insufficient credit"),
                None,
                OutOfCredit,
            ),
        )
    ],
]


@pytest.mark.parametrize(
    ("api", "config", "call", "status", "doc", "retry_after", "kind"),
    ERROR_CASES,
    ids=[
        f"{api}-{name}"
        for api in APIS
        for name in ("invalid", "unauthorized", "rate-limited", "out-of-credit")
    ],
)
async def test_generate_errors(
    api: str,
    config: dict[str, Any],
    call: Call,
    status: int,
    doc: dict[str, Any],
    retry_after: str | None,
    kind: type[StatusError],
) -> None:
    async with running_sandbox(SandboxConfig(**config)) as sb, aiohttp.ClientSession() as s:
        real = await call(s, sb.base_url)
    fixture = await from_fixture(call, "POST", CREATE_PATH[api], status, doc, retry_after)
    assert real.retry_after == fixture.retry_after
    assert_same_error(real, fixture, kind)
    if kind is RateLimited:
        assert [_retry_after(real), _retry_after(fixture)] == [1.0, 1.0]


def _retry_after(answer: Answer) -> float | None:
    error = status_error(answer)
    assert isinstance(error, RateLimited)
    return error.retry_after


# --- status -------------------------------------------------------------------------------


STATUS_CASES = [(0, 0, "pending"), (1, 0, "processing"), (5, 0, "completed"), (5, 1, "failed")]


async def _created_then(
    api: str, elapsed: float, failure_ratio: float, then: Callable[[str], Call]
) -> tuple[str, Answer]:
    """Create a video on a sandbox, let ``elapsed`` seconds pass, answer ``then(video_id)``."""
    clock = Clock()
    config = SandboxConfig(render_seconds=2, render_failure_ratio=failure_ratio)
    async with (
        running_sandbox(config, clock=clock) as sb,
        aiohttp.ClientSession() as session,
    ):
        created = await generate(api=api)(session, sb.base_url)
        video_id = parse_video_id(created.body)
        assert video_id is not None
        clock.now += elapsed
        return video_id, await then(video_id)(session, sb.base_url)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("elapsed", "failure_ratio", "expected"), STATUS_CASES)
async def test_video_status(api: str, elapsed: float, failure_ratio: float, expected: str) -> None:
    video_id, real = await _created_then(
        api, elapsed, failure_ratio, lambda vid: video_status(vid, api)
    )
    documented = doc_status(expected) if api == "v2" else {"data": doc_v3_detail(expected)}
    doc = await from_fixture(
        video_status(DOC_VIDEO_ID, api), "GET", status_path(DOC_VIDEO_ID, api), 200, documented
    )
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    read = parse_video_status if api == "v2" else parse_v3_video
    real_status, doc_status_ = read(real.body), read(doc.body)
    assert real_status.status == doc_status_.status == expected
    assert real_status.id == video_id
    assert real_status.created_at == doc_status_.created_at
    unset = {name for name, value in real_status if value is None}
    assert unset == {name for name, value in doc_status_ if value is None}
    if isinstance(real_status, VideoStatus) and isinstance(doc_status_, VideoStatus):
        assert real_status.callback_id == doc_status_.callback_id == "row-42"
        if expected == "failed":
            assert real_status.error is not None
            assert doc_status_.error is not None
            assert real_status.error.code == doc_status_.error.code
    if isinstance(real_status, V3VideoDetail) and isinstance(doc_status_, V3VideoDetail):
        assert real_status.title == doc_status_.title == "Welcome"
        assert real_status.failure_code == doc_status_.failure_code


@pytest.mark.parametrize(("elapsed", "failure_ratio", "expected"), STATUS_CASES)
async def test_v3_bulk_statuses(elapsed: float, failure_ratio: float, expected: str) -> None:
    video_id, real = await _created_then(
        "v3", elapsed, failure_ratio, lambda vid: video_statuses([vid, "0" * 32])
    )
    # The bulk endpoint says "queued" where the others say "pending".
    word = "queued" if expected == "pending" else expected
    documented = doc_v3_statuses([word, "not_found"])
    call = video_statuses([DOC_VIDEO_ID, "0" * 32])
    doc = await from_fixture(call, "GET", "/v3/videos/statuses", 200, documented)
    assert real.status == doc.status == 200
    assert shape(real.body["data"][0]) == shape(doc.body["data"][0])
    real_page, doc_page = parse_v3_statuses(real.body), parse_v3_statuses(doc.body)
    assert [i.status for i in real_page.data] == [i.status for i in doc_page.data]
    assert real_page.data[0].video_id == video_id
    assert (real_page.has_more, real_page.next_token) == (doc_page.has_more, doc_page.next_token)
    assert (real_page.data[0].error is None) == (doc_page.data[0].error is None)


@pytest.mark.parametrize("api", APIS)
async def test_unknown_video(api: str) -> None:
    call = video_status("0" * 32, api)
    async with running_sandbox() as sb, aiohttp.ClientSession() as session:
        real = await call(session, sb.base_url)
    documented = DOC_NOT_FOUND if api == "v2" else DOC_V3_NOT_FOUND
    doc = await from_fixture(call, "GET", status_path("0" * 32, api), 404, documented)
    assert real.status == doc.status == 404
    assert shape(real.body) == shape(doc.body)
    read = parse_video_status if api == "v2" else parse_v3_video
    for answer in (real, doc):
        with pytest.raises(ValueError, match="no data"):
            read(answer.body)
    assert type(status_error(real)) is type(status_error(doc)) is BadRequest
    code = "400599" if api == "v2" else "not_found"
    assert status_error(real).code == status_error(doc).code == code


# --- list ---------------------------------------------------------------------------------


def read_list(api: str, body: Any) -> tuple[list[str | None], bool]:
    """The titles on a list page, and whether another page follows."""
    if api == "v2":
        items, token = parse_video_list(body)
        return [i.video_title for i in items], token is not None
    page = parse_v3_list(body)
    assert page.has_more == (page.next_token is not None)
    return [i.title for i in page.data], page.has_more


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("limit", "more"), [(2, True), (5, False)])
async def test_video_list(api: str, limit: int, more: bool) -> None:
    clock = Clock()
    async with (
        running_sandbox(clock=clock) as sb,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(3):
            clock.now += 1
            await generate(api=api)(session, sb.base_url)
        clock.now += 5  # every render done, as in the documented page
        real = await video_list(limit, api=api)(session, sb.base_url)
    count = min(limit, 3)
    make_doc = doc_list if api == "v2" else doc_v3_list
    doc_body = make_doc(count, "next-page" if more else None)
    call = video_list(limit, api=api)
    doc = await from_fixture(call, "GET", LIST_PATH[api], 200, doc_body)
    assert real.status == doc.status == 200
    assert shape(real.body) == shape(doc.body)
    real_titles, real_more = read_list(api, real.body)
    doc_titles, doc_more = read_list(api, doc.body)
    assert len(real_titles) == len(doc_titles) == count
    assert real_more == doc_more == more
    assert real_titles[0] == doc_titles[0] == "Welcome"
