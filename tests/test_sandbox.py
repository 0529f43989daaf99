"""The sandbox server: each endpoint, each fault (seeded), rendering on a fake clock, CLI."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from engine.cli.sandbox_cmd import sandbox as sandbox_command
from engine.errors import OutOfCredit, RateLimited, RequestInvalid, make_status_error
from engine.request import validate_request
from engine.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from engine.sandbox.faults import FaultDecider, Outcome, SlidingWindowLimiter, format_retry_after
from engine.sandbox.state import account_label, estimate_duration

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def make_body(callback_id: str | None = "cb-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "video_inputs": [
            {
                "character": {"type": "avatar", "avatar_id": "Brent_sitting_office_front"},
                "voice": {
                    "type": "text",
                    "input_text": "Welcome to HeyGen API",
                    "voice_id": "ff2ecc8fbdef4273a28bed7b5e35bb57",
                },
            }
        ],
        "dimension": {"width": 1920, "height": 1080},
        **extra,
    }
    if callback_id is not None:
        body["callback_id"] = callback_id
    return body


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serve(
    clock: FakeClock | None = None, **options: Any
) -> AsyncIterator[tuple[RunningSandbox, aiohttp.ClientSession]]:
    config = SandboxConfig(**options)
    sandbox_cm = running_sandbox(config) if clock is None else running_sandbox(config, clock=clock)
    async with sandbox_cm as sb, aiohttp.ClientSession(sb.base_url) as session:
        yield sb, session


async def post(
    session: aiohttp.ClientSession, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with session.post("/v2/video/generate", headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def get(session: aiohttp.ClientSession, path: str, **params: Any) -> tuple[int, Any]:
    async with session.get(path, params=params) as resp:
        return resp.status, await resp.json()


async def counters(session: aiohttp.ClientSession) -> dict[str, Any]:
    _, data = await get(session, "/_sandbox/counters")
    return data  # type: ignore[no-any-return]


# --- generate -----------------------------------------------------------------------------


async def test_generate_answers_the_real_success_shape() -> None:
    async with serve() as (sb, session):
        status, body, _ = await post(session, make_body("cb-1"))
        assert status == 200
        assert body["error"] is None
        assert set(body) == {"error", "data"}
        assert HEX32.match(body["data"]["video_id"])
        seen = await counters(session)
    assert seen["requests"] == 1
    assert seen["created"] == 1
    assert seen["created_by_callback_id"] == {"cb-1": 1}
    assert seen["duplicates"] == 0
    assert sb.base_url.startswith("http://127.0.0.1:")


async def test_same_callback_id_twice_is_counted_as_a_duplicate() -> None:
    async with serve() as (_, session):
        await post(session, make_body("cb-1"))
        await post(session, make_body("cb-1"))
        seen = await counters(session)
    assert seen["created_by_callback_id"] == {"cb-1": 2}
    assert seen["duplicates"] == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (make_body(dimension={"width": 1921, "height": 1080}), "dimension.width"),
        (b"{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
    ],
)
async def test_invalid_body_is_refused_with_400_invalid_parameter(body: Any, fragment: str) -> None:
    async with serve() as (_, session):
        status, reply, _ = await post(session, body)
        seen = await counters(session)
    assert status == 400
    assert reply["data"] is None
    assert reply["error"]["code"] == "invalid_parameter"
    assert fragment in reply["error"]["message"]
    assert seen["created"] == 0


async def test_invalid_body_message_is_the_validators_own() -> None:
    body = make_body(dimension={"width": 1921, "height": 1080})
    with pytest.raises(RequestInvalid) as expected:
        validate_request(body)
    async with serve() as (_, session):
        _, reply, _ = await post(session, body)
    assert reply["error"]["message"] == str(expected.value)


async def test_key_is_required_when_configured_and_never_echoed() -> None:
    key = "sk-secret-sandbox-key"
    async with serve(api_key=key) as (_, session):
        missing = await post(session, make_body())
        wrong = await post(session, make_body(), {"X-Api-Key": "nope"})
        right = await post(session, make_body(), {"X-Api-Key": key})
        status_without_key = await get(session, "/v1/video_status.get", video_id="x")
    for status, reply, _ in (missing, wrong):
        assert status == 401
        assert reply["error"]["code"] == "unauthorized"
        assert reply["data"] is None
        assert key not in str(reply)
    assert right[0] == 200
    assert status_without_key[0] == 401


async def test_credit_limit_answers_insufficient_credit_but_test_videos_are_free() -> None:
    async with serve(credit_limit=1) as (_, session):
        first = await post(session, make_body("a"))
        second = await post(session, make_body("b"))
        free = await post(session, make_body("c", test=True))
    assert first[0] == 200
    assert second[0] == 400
    assert second[1]["error"]["code"] == "insufficient_credit"
    assert isinstance(make_status_error(second[0], second[1]), OutOfCredit)
    assert free[0] == 200


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [(1.0, "1"), (0.25, "0.25"), (None, None)])
async def test_injected_429_carries_retry_after(
    retry_after: float | None, header: str | None
) -> None:
    async with serve(rate_429=1.0, retry_after_s=retry_after) as (_, session):
        replies = [await post(session, make_body(f"cb-{i}")) for i in range(3)]
        seen = await counters(session)
    for status, reply, headers in replies:
        assert status == 429
        assert reply["error"]["code"] == "rate_limit_exceeded"
        assert headers.get("Retry-After") == header
        error = make_status_error(status, reply, retry_after)
        assert isinstance(error, RateLimited)
    assert seen["requests"] == 3
    assert seen["created"] == 0


async def test_injected_5xx_uses_the_error_envelope() -> None:
    async with serve(rate_5xx=1.0) as (_, session):
        replies = [await post(session, make_body()) for _ in range(8)]
    assert {status for status, _, _ in replies} <= {500, 502, 503, 504}
    assert all(reply["error"]["code"] == "internal_error" for _, reply, _ in replies)


async def test_drop_before_closes_the_connection_and_creates_nothing() -> None:
    async with serve(drop_before=1.0) as (_, session):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, make_body("cb-1"))
        seen = await counters(session)
    assert seen["requests"] == 1
    assert seen["created"] == 0


async def test_drop_after_closes_the_connection_but_the_video_exists() -> None:
    async with serve(drop_after=1.0) as (sb, session):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, make_body("cb-1"))
        seen = await counters(session)
        # The engine's reconcile must be able to find it.
        _, listing = await get(session, "/v1/video.list")
    assert seen["created_by_callback_id"] == {"cb-1": 1}
    (video_id,) = sb.state.videos
    assert listing["data"]["videos"][0]["video_id"] == video_id


async def _statuses(seed: int) -> list[int]:
    async with serve(seed=seed, rate_429=0.3, rate_5xx=0.3) as (_, session):
        return [(await post(session, make_body(f"cb-{i}")))[0] for i in range(30)]


async def test_faults_are_reproducible_from_the_seed() -> None:
    first = await _statuses(seed=7)
    assert first == await _statuses(seed=7)
    assert first != await _statuses(seed=8)
    assert {200, 429} <= set(first)


def test_latency_is_drawn_within_its_spread() -> None:
    decider = FaultDecider(SandboxConfig(latency_ms=100, latency_spread_ms=50, seed=3))
    latencies = [decider.decide().latency_s for _ in range(200)]
    assert all(0.05 <= s <= 0.15 for s in latencies)
    assert len(set(latencies)) > 100
    assert FaultDecider(SandboxConfig()).decide().outcome is Outcome.OK


async def test_latency_delays_the_answer() -> None:
    async with serve(latency_ms=60) as (_, session):
        loop_time = asyncio.get_running_loop().time
        started = loop_time()
        await post(session, make_body())
        assert loop_time() - started >= 0.05


async def test_server_side_rate_limit_counts_violations() -> None:
    async with serve(rate_limit=3, rate_limit_period_s=60) as (_, session):
        replies = [await post(session, make_body(f"cb-{i}")) for i in range(5)]
        seen = await counters(session)
    assert [status for status, _, _ in replies] == [200, 200, 200, 429, 429]
    assert all(float(headers["Retry-After"]) > 0 for _, _, headers in replies[3:])
    assert seen["violations"] == 2
    assert seen["created"] == 3
    assert len(seen["request_times"]) == 5
    assert seen["request_times"] == sorted(seen["request_times"])


async def test_the_server_side_limit_is_each_accounts_own() -> None:
    """HeyGen limits an account, not the service: two keys each get the whole limit, and
    the counters tell their starts and refusals apart by a digest, never the key."""
    async with serve(rate_limit=2, rate_limit_period_s=60) as (_, session):
        first = [await post(session, make_body(f"a-{i}"), {"X-Api-Key": "key-a"}) for i in range(3)]
        second = [
            await post(session, make_body(f"b-{i}"), {"X-Api-Key": "key-b"}) for i in range(2)
        ]
        seen = await counters(session)
    assert [status for status, _, _ in first] == [200, 200, 429]
    assert [status for status, _, _ in second] == [200, 200]
    a, b = account_label("key-a"), account_label("key-b")
    assert seen["violations_by_account"] == {a: 1}
    assert {k: len(v) for k, v in seen["request_times_by_account"].items()} == {a: 3, b: 2}
    assert "key-a" not in str(seen)
    assert "key-b" not in str(seen)


def test_sliding_window_admits_n_per_window_and_says_how_long_to_wait() -> None:
    limiter = SlidingWindowLimiter(limit=2, period=1.0)
    assert limiter.try_acquire(10.0) is None
    assert limiter.try_acquire(10.4) is None
    assert limiter.try_acquire(10.5) == pytest.approx(0.5)
    assert limiter.try_acquire(11.0) is None  # the start at 10.0 has left the window
    assert limiter.try_acquire(11.2) == pytest.approx(0.2)
    assert limiter.try_acquire(11.4) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(1.0, "1"), (2, "2"), (0.25, "0.25"), (1e-6, "0.001")]
)
def test_retry_after_formatting(seconds: float, text: str) -> None:
    assert format_retry_after(seconds) == text


# --- status and rendering -----------------------------------------------------------------


async def test_render_progresses_pending_processing_completed_on_the_clock() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_seconds=10) as (sb, session):
        _, created, _ = await post(session, make_body("cb-9", caption=True))
        video_id = created["data"]["video_id"]
        seen = []
        for advance in (0, 1.5, 8.5):
            clock.now += advance
            status, reply = await get(session, "/v1/video_status.get", video_id=video_id)
            assert status == 200
            seen.append(reply)
    assert [r["data"]["status"] for r in seen] == ["pending", "processing", "completed"]
    pending, done = seen[0]["data"], seen[2]["data"]
    assert pending["video_url"] is None
    assert pending["duration"] is None
    assert done["callback_id"] == "cb-9"
    assert done["id"] == video_id
    assert done["error"] is None
    assert done["created_at"] == int(clock.now - 10)
    assert done["duration"] == pytest.approx(4 * 60 / 150)
    expires = int(clock.now) + 7 * 24 * 3600
    assert done["video_url"] == f"{sb.base_url}/videos/{video_id}.mp4?expires={expires}"
    assert done["caption_url"].endswith(".vtt?expires=" + str(expires))
    assert seen[2]["code"] == 100
    assert seen[2]["message"] == "Success"


async def test_render_failure_still_answers_code_100_with_an_error_object() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_failure_ratio=1.0, render_seconds=1) as (_, session):
        _, created, _ = await post(session, make_body())
        clock.now += 5
        status, reply = await get(
            session, "/v1/video_status.get", video_id=created["data"]["video_id"]
        )
    assert status == 200
    assert reply["code"] == 100
    data = reply["data"]
    assert data["status"] == "failed"
    assert data["video_url"] is None
    assert set(data["error"]) == {"code", "message", "detail"}


async def test_status_of_an_unknown_or_missing_id_uses_the_older_error_shape() -> None:
    async with serve() as (_, session):
        unknown = await get(session, "/v1/video_status.get", video_id="f" * 32)
        missing = await get(session, "/v1/video_status.get")
    assert unknown[0] == 404
    assert set(unknown[1]) == {"code", "message"}
    assert missing[0] == 400


def test_duration_counts_words_at_150_per_minute_scaled_by_speed_plus_silence() -> None:
    body = make_body()
    body["video_inputs"] = [
        {"voice": {"type": "text", "voice_id": "v", "input_text": "word " * 150, "speed": 1.5}},
        {"voice": {"type": "silence", "duration": 2.5}},
    ]
    assert estimate_duration(validate_request(body)) == pytest.approx(60 / 1.5 + 2.5)


# --- list ---------------------------------------------------------------------------------


async def test_list_pages_newest_first_by_token() -> None:
    clock = FakeClock()
    async with serve(clock=clock) as (sb, session):
        for i in range(5):
            clock.now += 1
            await post(session, make_body(f"cb-{i}", title=f"video {i}"))
        created = list(sb.state.videos)
        pages: list[list[dict[str, Any]]] = []
        token: str | None = None
        while True:
            params = {"limit": 2} if token is None else {"limit": 2, "token": token}
            status, reply = await get(session, "/v1/video.list", **params)
            assert status == 200
            pages.append(reply["data"]["videos"])
            token = reply["data"]["token"]
            if token is None:
                break
            # A video created between pages must not shift the next page.
            await post(session, make_body("late"))
        list_requests = (await counters(session))["list_requests"]
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [item["video_id"] for page in pages for item in page]
    assert listed == created[::-1]
    first = pages[0][0]
    assert first == {
        "video_id": created[-1],
        "video_title": "video 4",
        "created_at": int(clock.now),
        "status": "pending",
    }
    assert list_requests == 3


@pytest.mark.parametrize(("params", "status"), [({"token": "bogus"}, 400), ({"limit": 0}, 400)])
async def test_list_refuses_bad_parameters(params: dict[str, Any], status: int) -> None:
    async with serve() as (_, session):
        await post(session, make_body())
        assert (await get(session, "/v1/video.list", **params))[0] == status


async def test_list_limit_is_capped_at_100() -> None:
    async with serve() as (_, session):
        for i in range(101):
            await post(session, make_body(f"cb-{i}"))
        _, reply = await get(session, "/v1/video.list", limit=500)
    assert len(reply["data"]["videos"]) == 100
    assert reply["data"]["token"] is not None


async def test_reset_starts_over() -> None:
    async with serve() as (_, session):
        await post(session, make_body())
        async with session.post("/_sandbox/reset") as resp:
            assert resp.status == 200
        seen = await counters(session)
    assert seen["requests"] == 0
    assert seen["created"] == 0


# --- config and CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"rate_429": 1.5}, {"latency_ms": -1}, {"rate_limit": 0}, {"rate_limit": 2.5}],
)
def test_config_refuses_impossible_values(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        SandboxConfig(**options)


def test_cli_help_lists_the_fault_flags() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--latency-ms",
        "--rate-429",
        "--drop-before",
        "--rate-limit",
        "HEYGEN_SANDBOX_KEY",
    ):
        assert flag in result.output


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--host", "0.0.0.0"], 1, "--allow-remote"),
        (["--rate-limit", "fast"], 2, "'fast' is not a rate"),
        (["--rate-limit", "2.5/s"], 2, "whole number"),
        (["--rate-429", "2"], 2, "--rate-429"),
        (["--retry-after", "soon"], 2, "'none'"),
    ],
)
def test_cli_refuses_bad_options(args: list[str], code: int, text: str) -> None:
    result = CliRunner().invoke(sandbox_command, args)
    assert result.exit_code == code
    assert text in result.output


def test_cli_serves_on_a_free_port_and_stops_on_sigint() -> None:
    code = "from engine.cli.sandbox_cmd import sandbox; sandbox()"
    env = {k: v for k, v in os.environ.items() if k != "HEYGEN_SANDBOX_KEY"}
    with subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--rate-limit", "50/s"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            match = re.fullmatch(r"Sandbox listening on (http://127\.0\.0\.1:(\d+))", line)
            assert match, line
            assert match.group(2) != "0"
            with urllib.request.urlopen(f"{match.group(1)}/_sandbox/counters", timeout=5) as resp:
                assert resp.status == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
