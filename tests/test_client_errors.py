"""The HTTP client: every answer and every transport failure mapped to the right error.

Fake HTTP at the transport (``http``, aioresponses) for the mapping; real sockets
for what only a real connection shows (refused port, connect timeout, dropped
connections, redirects).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from engine.api.client import HeyGenClient
from engine.api.v2 import GENERATE_PATH
from engine.errors import (
    BadRequest,
    ConnectFailed,
    ConnectionDropped,
    EngineError,
    KeyRefused,
    OutOfCredit,
    RateLimited,
    RequestTimeout,
    ServerError,
    UnreadableAnswer,
    WrongAddress,
)
from engine.sandbox import SandboxConfig, running_sandbox
from engine.submitter.retry import Step, next_step
from tests.conftest import FixedAioresponses

BASE = "http://heygen.test"
GENERATE = BASE + GENERATE_PATH
KEY = "sk-very-secret-0123456789"
BODY = {"video_inputs": [], "callback_id": "job-1"}


async def create(**client_args: Any) -> str:
    async with HeyGenClient(BASE, KEY, **client_args) as client:
        return await client.create_video(BODY)


async def create_error(**client_args: Any) -> EngineError:
    with pytest.raises(EngineError) as caught:
        await create(**client_args)
    error = caught.value
    assert KEY not in str(error)
    return error


def calls(http: FixedAioresponses) -> int:
    return sum(len(v) for v in http.requests.values())


# --- answers -------------------------------------------------------------------------------


async def test_success_in_the_real_envelope(http: FixedAioresponses) -> None:
    http.post(GENERATE, payload={"error": None, "data": {"video_id": "v1"}})
    assert await create() == "v1"
    (request,) = http.requests[("POST", URL(GENERATE))]
    assert request.kwargs["data"] == b'{"video_inputs": [], "callback_id": "job-1"}'


async def test_success_in_the_flat_shape(http: FixedAioresponses) -> None:
    http.post(GENERATE, payload={"success": True, "video_id": "v2"})
    assert await create() == "v2"


async def test_success_with_json_only_pythons_parser_reads(http: FixedAioresponses) -> None:
    """The fast parser refuses integers past 64 bits; the answer is still read."""
    http.post(
        GENERATE,
        body=b'{"error": null, "data": {"video_id": "v3", "n": 123456789012345678901234567890}}',
        headers={"Content-Type": "application/json"},
    )
    assert await create() == "v3"


async def test_success_without_a_video_id_is_uncertain(http: FixedAioresponses) -> None:
    http.post(GENERATE, payload={"error": None, "data": {}})
    error = await create_error()
    assert isinstance(error, UnreadableAnswer)
    assert next_step(error) is Step.UNCERTAIN


@pytest.mark.parametrize(
    ("status", "body", "kind", "step"),
    [
        (
            400,
            {"error": {"code": "invalid_parameter", "message": "bad avatar"}},
            BadRequest,
            Step.FAILED,
        ),
        (404, {"code": 400599, "message": "no such avatar"}, BadRequest, Step.FAILED),
        (401, {"error": {"code": "unauthorized", "message": "bad key"}}, KeyRefused, Step.ABORT),
        (403, None, KeyRefused, Step.ABORT),
        (402, None, OutOfCredit, Step.ABORT),
        (400, {"error": {"code": "insufficient_credit", "message": "x"}}, OutOfCredit, Step.ABORT),
        (429, {"error": {"code": "rate_limit_exceeded", "message": "x"}}, RateLimited, Step.RETRY),
        # V2 has no idempotency key: a gateway's fault may hide a created video.
        (500, None, ServerError, Step.UNCERTAIN),
        (502, "<html>Bad gateway</html>", ServerError, Step.UNCERTAIN),
        (503, None, ServerError, Step.RETRY),
        (504, None, ServerError, Step.UNCERTAIN),
    ],
)
async def test_status_answers(
    http: FixedAioresponses, status: int, body: Any, kind: type[EngineError], step: Step
) -> None:
    if isinstance(body, str):
        http.post(GENERATE, status=status, body=body)
    else:
        http.post(GENERATE, status=status, payload=body)
    error = await create_error()
    assert type(error) is kind
    assert next_step(error) is step
    assert calls(http) == 1


async def test_the_service_message_is_kept(http: FixedAioresponses) -> None:
    http.post(
        GENERATE,
        status=400,
        payload={"error": {"code": "invalid_parameter", "message": "avatar_id not found"}},
    )
    error = await create_error()
    assert "avatar_id not found" in str(error)


async def test_retry_after_seconds_reach_the_error(http: FixedAioresponses) -> None:
    http.post(GENERATE, status=429, payload=None, headers={"Retry-After": "2.5"})
    error = await create_error()
    assert isinstance(error, RateLimited)
    assert error.retry_after == 2.5


async def test_retry_after_date_reaches_the_error(http: FixedAioresponses) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    http.post(GENERATE, status=429, payload=None, headers={"Retry-After": when})
    error = await create_error()
    assert isinstance(error, RateLimited)
    assert error.retry_after is not None
    assert 50 <= error.retry_after <= 60


async def test_a_body_in_a_broken_encoding_does_not_crash(http: FixedAioresponses) -> None:
    http.post(
        GENERATE,
        status=500,
        body=b"\xff\xfe oops",
        headers={"Content-Type": "text/plain; charset=no-such-charset"},
    )
    error = await create_error()
    assert isinstance(error, ServerError)
    assert "oops" in str(error)


# --- transport failures, faked at the transport -------------------------------------------


REQUEST_INFO = aiohttp.RequestInfo(URL(GENERATE), "POST", CIMultiDictProxy(CIMultiDict()))


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("heygen.test", 80, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


@pytest.mark.parametrize(
    ("exception", "kind", "step"),
    [
        (_connector_error(), ConnectFailed, Step.RETRY),
        (aiohttp.ConnectionTimeoutError("connect timed out"), ConnectFailed, Step.RETRY),
        (aiohttp.ServerDisconnectedError(), ConnectionDropped, Step.UNCERTAIN),
        (aiohttp.ClientOSError(104, "reset by peer"), ConnectionDropped, Step.UNCERTAIN),
        (
            aiohttp.ClientConnectionResetError("closing transport"),
            ConnectionDropped,
            Step.UNCERTAIN,
        ),
        (aiohttp.ClientPayloadError("truncated"), ConnectionDropped, Step.UNCERTAIN),
        (aiohttp.SocketTimeoutError("read timed out"), RequestTimeout, Step.UNCERTAIN),
        (TimeoutError(), RequestTimeout, Step.UNCERTAIN),
        (
            aiohttp.ClientResponseError(REQUEST_INFO, (), status=200, message="bad header"),
            ConnectionDropped,
            Step.UNCERTAIN,
        ),
    ],
)
async def test_transport_failures(
    http: FixedAioresponses, exception: Exception, kind: type[EngineError], step: Step
) -> None:
    http.post(GENERATE, exception=exception)
    error = await create_error()
    assert type(error) is kind
    assert next_step(error) is step
    assert error.__cause__ is exception


# --- real sockets ----------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_is_connector_error_and_retried() -> None:
    async with HeyGenClient(f"http://127.0.0.1:{closed_port()}", KEY) as client:
        with pytest.raises(ConnectFailed) as caught:
            await client.create_video(BODY)
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert next_step(caught.value) is Step.RETRY


@contextmanager
def listener_that_never_accepts() -> Iterator[int]:
    """A port whose accept queue is full: new connections hang in the handshake."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


async def test_a_connect_timeout_is_connection_timeout_error_and_retried() -> None:
    with listener_that_never_accepts() as port:
        client = HeyGenClient(f"http://127.0.0.1:{port}", KEY, connect_timeout_s=0.05)
        async with client:
            with pytest.raises(ConnectFailed) as caught:
                await client.create_video(BODY)
    assert isinstance(caught.value.__cause__, aiohttp.ConnectionTimeoutError)
    assert next_step(caught.value) is Step.RETRY


async def test_no_answer_in_time_after_sending_is_uncertain() -> None:
    async with running_sandbox(SandboxConfig(latency_ms=300)) as sandbox:
        client = HeyGenClient(sandbox.base_url, KEY, total_timeout_s=0.05)
        async with client:
            with pytest.raises(RequestTimeout) as caught:
                await client.create_video(BODY)
        assert sandbox.state.counters.requests == 1
    assert next_step(caught.value) is Step.UNCERTAIN


@pytest.mark.parametrize(
    ("config", "created"),
    [(SandboxConfig(drop_before=1.0), 0), (SandboxConfig(drop_after=1.0), 1)],
    ids=["drop_before", "drop_after"],
)
async def test_sandbox_drops_are_uncertain(config: SandboxConfig, created: int) -> None:
    async with running_sandbox(config) as sandbox, HeyGenClient(sandbox.base_url, KEY) as client:
        with pytest.raises(ConnectionDropped) as caught:
            await client.create_video(VALID_BODY)
        assert sandbox.state.counters_view()["created"] == created
    assert next_step(caught.value) is Step.UNCERTAIN


VALID_BODY: dict[str, Any] = {
    "callback_id": "job-1",
    "dimension": {"width": 1280, "height": 720},
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "a"},
            "voice": {"type": "text", "voice_id": "v", "input_text": "hello"},
        }
    ],
}


async def test_the_key_header_is_sent_and_one_connection_is_kept_alive() -> None:
    async with running_sandbox(SandboxConfig(api_key=KEY)) as sandbox:
        async with HeyGenClient(sandbox.base_url, KEY) as client:
            ids = [await client.create_video(VALID_BODY) for _ in range(5)]
            session = client._transport._session
            connector = session.connector if session else None
            assert connector is not None
            # Every request went over the same pooled connection.
            assert len(connector._conns) == 1
        assert len(set(ids)) == 5
        async with HeyGenClient(sandbox.base_url, "wrong-key") as client:
            with pytest.raises(KeyRefused) as caught:
                await client.create_video(VALID_BODY)
        assert "wrong-key" not in str(caught.value)


@asynccontextmanager
async def redirecting_server(status: int) -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        seen.append(request.method + " " + request.path)
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.method + " " + request.path)
        return web.json_response({"data": {"video_id": "should-not-happen"}})

    app = web.Application()
    app.router.add_post(GENERATE_PATH, moved)
    app.router.add_route("*", "/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirected_post_is_not_followed_and_stops_the_run(status: int) -> None:
    """The address moved: no job is to blame, so none fails; the run stops (exit 2)."""
    async with redirecting_server(status) as (base, seen), HeyGenClient(base, KEY) as client:
        with pytest.raises(WrongAddress) as caught:
            await client.create_video(BODY)
    assert seen == ["POST " + GENERATE_PATH]
    assert caught.value.status == status
    assert next_step(caught.value) is Step.ABORT


@pytest.mark.parametrize(
    ("status", "body"), [(404, "404: Not Found"), (405, "405: Method Not Allowed")]
)
async def test_a_web_servers_not_found_blames_the_address(
    http: FixedAioresponses, status: int, body: str
) -> None:
    http.post(GENERATE, status=status, body=body)
    error = await create_error()
    assert type(error) is WrongAddress
    assert next_step(error) is Step.ABORT
