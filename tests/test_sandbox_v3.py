"""The sandbox's v3 endpoints: shapes, Idempotency-Key as HeyGen keeps it, and every
fault flag applied to v3 creates, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.request.v3 import validate_v3_request
from engine.sandbox import SandboxConfig, running_sandbox
from engine.sandbox.durations import estimate_v3_duration
from engine.sandbox.idempotency import KEY_LIFETIME_S, IdempotencyKeys, Seen
from engine.sandbox.v3 import CREATE_ROUTE
from tests.test_sandbox import HEX32, FakeClock
from tests.threaded_sandbox import Handler, drop_after, threaded_sandbox

DETAIL_KEYS = {
    "id",
    "status",
    "title",
    "created_at",
    "completed_at",
    "duration",
    "video_url",
    "captioned_video_url",
    "subtitle_url",
    "thumbnail_url",
    "gif_url",
    "video_page_url",
    "folder_id",
    "failure_code",
    "failure_message",
}


def v3_body(title: str = "Welcome Ada", **extra: Any) -> dict[str, Any]:
    return {
        "type": "studio",
        "title": title,
        "callback_id": f"cb-{title}",
        "scenes": [
            {
                "type": "avatar_video",
                "input": {"type": "avatar", "avatar_id": "a1", "script": "Hi there Ada"},
            },
            {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}, "duration": 2},
        ],
        **extra,
    }


@asynccontextmanager
async def serve(
    clock: FakeClock | None = None, state_file: Path | None = None, **options: Any
) -> AsyncIterator[tuple[Any, aiohttp.ClientSession]]:
    config = SandboxConfig(**options)
    cm = running_sandbox(config, clock=clock or FakeClock(), state_file=state_file)
    async with cm as sb, aiohttp.ClientSession(sb.base_url) as session:
        yield sb, session


async def create(
    session: aiohttp.ClientSession, body: Any, key: str | None = None, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    if key is not None:
        headers["Idempotency-Key"] = key
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with session.post("/v3/videos", headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def get(session: aiohttp.ClientSession, path: str, **params: Any) -> tuple[int, Any]:
    async with session.get(path, params=params) as resp:
        return resp.status, await resp.json()


async def counters(session: aiohttp.ClientSession) -> dict[str, Any]:
    return (await get(session, "/_sandbox/counters"))[1]  # type: ignore[no-any-return]


# --- create ---------------------------------------------------------------------------------


async def test_create_answers_the_documented_shape_and_is_counted() -> None:
    async with serve() as (_, session):
        status, body, _ = await create(session, v3_body())
        seen = await counters(session)

    assert status == 200
    assert set(body) == {"data"}
    assert set(body["data"]) == {"video_id", "status", "output_format"}
    assert body["data"]["status"] == "waiting"
    assert body["data"]["output_format"] == "mp4"
    assert HEX32.match(body["data"]["video_id"])
    assert (seen["requests"], seen["v3_requests"], seen["v3_created"], seen["created"]) == (
        1,
        1,
        1,
        1,
    )
    assert seen["created_by_callback_id"] == {"cb-Welcome Ada": 1}


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            v3_body(scenes=[{"type": "avatar_video", "input": {"type": "avatar"}}]),
            "scenes[0].input.avatar_id: required",
            "scenes[0].input.avatar_id",
        ),
        (
            {"type": "avatar", "avatar_id": "a", "script": "hi", "voice_settings": {"speed": 2}},
            "voice_settings.speed: must be between 0.5 and 1.5, got 2",
            "voice_settings.speed",
        ),
        ({"type": "avatar", "avatar_id": "a"}, "needs script", None),
        (b"{not json", "not valid JSON", None),
        (b"[1, 2]", "must be a JSON object", None),
    ],
)
async def test_an_invalid_body_is_refused_with_the_v3_envelope_and_its_path(
    body: Any, message: str, param: str | None
) -> None:
    async with serve() as (_, session):
        status, answer, _ = await create(session, body)
        seen = await counters(session)

    assert status == 400
    assert answer["error"]["code"] == "invalid_parameter"
    assert message in answer["error"]["message"]
    assert answer["error"].get("param") == param
    assert seen["created"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3/videos"),
        ("GET", "/v3/videos/abc"),
        ("GET", "/v3/videos/statuses?video_ids=abc"),
        ("GET", "/v3/videos"),
    ],
)
async def test_every_v3_path_refuses_a_wrong_key_in_the_v3_envelope(method: str, path: str) -> None:
    async with serve(api_key="sk-right") as (_, session):
        headers = {"X-Api-Key": "sk-wrong"}
        async with session.request(method, path, json=v3_body(), headers=headers) as resp:
            status, answer = resp.status, await resp.json()
        seen = await counters(session)

    assert status == 401
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == "unauthorized"
    assert "sk-right" not in str(answer)
    assert seen["created"] == 0


async def test_the_right_key_is_let_in() -> None:
    async with serve(api_key="sk-right") as (_, session):
        status, _, _ = await create(session, v3_body(), **{"X-Api-Key": "sk-right"})
    assert status == 200


async def test_credit_limit_answers_402_insufficient_credit() -> None:
    async with serve(credit_limit=1) as (_, session):
        first, _, _ = await create(session, v3_body("one"))
        second, answer, _ = await create(session, v3_body("two"))
    assert (first, second) == (200, 402)
    assert answer["error"]["code"] == "insufficient_credit"


# --- idempotency ---------------------------------------------------------------------------


async def test_a_repeated_key_replays_the_first_answer_even_for_another_body() -> None:
    async with serve() as (_, session):
        _, first, _ = await create(session, v3_body("one"), key="job-1")
        _, again, _ = await create(session, v3_body("other body"), key="job-1")
        _, other, _ = await create(session, v3_body("one"), key="job-2")
        seen = await counters(session)

    assert again == first
    assert other["data"]["video_id"] != first["data"]["video_id"]
    assert (seen["v3_created"], seen["v3_replays"]) == (2, 1)
    assert seen["created_by_idempotency_key"] == {"job-1": 1, "job-2": 1}


@pytest.mark.parametrize(
    "key", ["", "has space", "émile", "a/b", "x" * 256, "semi;colon", "ada@example.com"]
)
async def test_a_key_breaking_the_character_rules_is_refused_with_400(key: str) -> None:
    async with serve() as (_, session):
        status, answer, _ = await create(session, v3_body(), key=key)
        seen = await counters(session)

    assert status == 400
    assert answer["error"]["code"] == "invalid_parameter"
    assert answer["error"]["param"] == "Idempotency-Key"
    assert seen["created"] == 0


@pytest.mark.parametrize(
    "key", ["x" * 255, "a", "Az09_-:.", "2f1c9a1e-7d0b-4c1e-9f3a-0b6d2c5e8a71"]
)
async def test_a_key_within_the_rules_is_accepted(key: str) -> None:
    async with serve() as (_, session):
        status, _, _ = await create(session, v3_body(), key=key)
    assert status == 200


async def test_a_repeat_while_the_first_is_in_flight_answers_409_then_goes_through() -> None:
    async with serve() as (sb, session):
        # The first request of this key is being handled (as during injected latency).
        assert sb.state.keys.claim(CREATE_ROUTE, "job-1").seen is Seen.NEW
        status, answer, _ = await create(session, v3_body(), key="job-1")
        sb.state.keys.release(CREATE_ROUTE, "job-1")
        after, _, _ = await create(session, v3_body(), key="job-1")
        seen = await counters(session)

    assert status == 409
    assert answer["error"]["code"] == "request_in_progress"
    assert after == 200
    assert (seen["v3_in_progress"], seen["v3_created"]) == (1, 1)


async def test_latency_holds_a_create_in_flight_and_a_repeat_meanwhile_gets_409(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()
    delays: list[float] = []

    async def held(seconds: float) -> None:
        # The injected latency, held open by the test instead of a clock.
        delays.append(seconds)
        entered.set()
        await gate.wait()

    monkeypatch.setattr("engine.sandbox.answers.asyncio", SimpleNamespace(sleep=held))
    async with serve(latency_ms=250) as (_, session):
        first = asyncio.create_task(create(session, v3_body(), key="job-1"))
        await entered.wait()
        status, answer, _ = await create(session, v3_body(), key="job-1")
        gate.set()
        first_status, first_answer, _ = await first
        _, replay, _ = await create(session, v3_body(), key="job-1")
        seen = await counters(session)

    assert delays == [0.25, 0.25]  # the first create and the replay; never the 409
    assert (status, answer["error"]["code"]) == (409, "request_in_progress")
    assert first_status == 200
    assert replay == first_answer
    assert (seen["v3_created"], seen["v3_in_progress"], seen["v3_replays"]) == (1, 1, 1)


async def test_a_drop_after_create_remembers_the_key_and_the_resend_replays_the_video() -> None:
    async with serve(drop_after=1.0) as (sb, session):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await create(session, v3_body(), key="job-1")
        sb.state.config.drop_after = 0
        status, answer, _ = await create(session, v3_body(), key="job-1")
        seen = await counters(session)

    (video_id,) = sb.state.videos
    assert (status, answer["data"]["video_id"]) == (200, video_id)
    assert (seen["v3_created"], seen["v3_replays"]) == (1, 1)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [({"drop_before": 1.0}, None), ({"rate_429": 1.0}, 429), ({"rate_5xx": 1.0}, "5xx")],
)
async def test_a_fault_before_creation_frees_the_key_for_the_resend(
    fault: dict[str, float], expected: Any
) -> None:
    async with serve(**fault) as (sb, session):
        if expected is None:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await create(session, v3_body(), key="job-1")
        else:
            status, answer, headers = await create(session, v3_body(), key="job-1")
            assert status == 429 if expected == 429 else status >= 500
            assert set(answer) == {"error"}
            if expected == 429:
                assert answer["error"]["code"] == "rate_limit_exceeded"
                assert headers["Retry-After"] == "1"
        for name in fault:
            setattr(sb.state.config, name, 0)
        status, _, _ = await create(session, v3_body(), key="job-1")
        seen = await counters(session)

    assert status == 200
    assert (seen["v3_created"], seen["v3_replays"]) == (1, 0)


async def test_the_server_side_rate_limit_applies_to_v3_creates() -> None:
    async with serve(rate_limit=2, rate_limit_period_s=3600) as (_, session):
        statuses = [(await create(session, v3_body(str(i))))[:2] for i in range(3)]
        seen = await counters(session)

    assert [s for s, _ in statuses] == [200, 200, 429]
    assert statuses[2][1]["error"]["code"] == "rate_limit_exceeded"
    assert seen["violations"] == 1


async def test_v3_creates_meet_seeded_faults_reproducibly() -> None:
    async def run() -> list[int]:
        async with serve(seed=7, rate_429=0.5) as (_, session):
            return [(await create(session, v3_body(str(i))))[0] for i in range(12)]

    first, second = await run(), await run()
    assert first == second
    assert {200, 429} == set(first)


async def test_a_key_is_forgotten_after_24_hours_of_the_sandbox_clock() -> None:
    clock = FakeClock()
    async with serve(clock=clock) as (_, session):
        _, first, _ = await create(session, v3_body(), key="job-1")
        clock.now += KEY_LIFETIME_S - 1
        _, within, _ = await create(session, v3_body(), key="job-1")
        clock.now += 1
        _, after, _ = await create(session, v3_body(), key="job-1")
        seen = await counters(session)

    assert within == first
    assert after["data"]["video_id"] != first["data"]["video_id"]
    assert seen["created_by_idempotency_key"] == {"job-1": 2}


def test_keys_are_scoped_per_route() -> None:
    keys = IdempotencyKeys(FakeClock())
    keys.claim("POST /v3/videos", "k")
    keys.settle("POST /v3/videos", "k", "vid-1")

    assert keys.claim("POST /v3/videos", "k").video_id == "vid-1"
    assert keys.claim("POST /v3/templates/t/generate", "k").seen is Seen.NEW


async def test_videos_and_keys_outlive_a_restart_through_the_state_file(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox.json"
    async with serve(state_file=state_file) as (_, session):
        _, first, _ = await create(session, v3_body(), key="job-1")
    async with serve(state_file=state_file) as (sb, session):
        _, again, _ = await create(session, v3_body(), key="job-1")
        status, detail = await get(session, f"/v3/videos/{first['data']['video_id']}")

    assert again == first
    assert len(sb.state.videos) == 1
    assert (status, detail["data"]["title"]) == (200, "Welcome Ada")


# --- reading --------------------------------------------------------------------------------


async def test_detail_follows_the_render_on_the_clock_with_every_documented_field() -> None:
    clock = FakeClock()
    body = v3_body(caption={"style": "default"})
    async with serve(clock=clock, render_seconds=10) as (sb, session):
        _, created, _ = await create(session, body)
        video_id = created["data"]["video_id"]
        seen = []
        for advance in (0, 1.5, 8.5):
            clock.now += advance
            status, reply = await get(session, f"/v3/videos/{video_id}")
            assert status == 200
            seen.append(reply["data"])

    assert [d["status"] for d in seen] == ["pending", "processing", "completed"]
    assert all(set(d) == DETAIL_KEYS for d in seen)
    pending, done = seen[0], seen[2]
    assert (pending["video_url"], pending["completed_at"], pending["duration"]) == (
        None,
        None,
        None,
    )
    expires = int(clock.now) + 7 * 24 * 3600
    assert done["video_url"] == f"{sb.base_url}/videos/{video_id}.mp4?expires={expires}"
    assert done["subtitle_url"].endswith(f".srt?expires={expires}")
    assert done["captioned_video_url"] is not None
    assert done["video_page_url"] is not None
    assert (done["created_at"], done["completed_at"]) == (int(clock.now - 10), int(clock.now))
    assert done["title"] == "Welcome Ada"
    assert done["duration"] == estimate_v3_duration(validate_v3_request(body))
    assert done["failure_code"] is None


async def test_a_failed_render_names_its_failure_in_detail_and_statuses() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_seconds=1, render_failure_ratio=1.0) as (_, session):
        _, created, _ = await create(session, v3_body())
        video_id = created["data"]["video_id"]
        clock.now += 1
        _, detail = await get(session, f"/v3/videos/{video_id}")
        _, bulk = await get(session, "/v3/videos/statuses", video_ids=video_id)

    assert detail["data"]["status"] == "failed"
    assert detail["data"]["failure_code"] == "render_failed"
    assert detail["data"]["failure_message"]
    assert bulk["data"][0]["status"] == "failed"
    assert bulk["data"][0]["error"]["code"] == "render_failed"


async def test_detail_of_an_unknown_id_is_404_not_found() -> None:
    async with serve() as (_, session):
        status, answer = await get(session, "/v3/videos/nope")
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_statuses_answer_each_id_in_the_bulk_words() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_seconds=10) as (_, session):
        ids = [(await create(session, v3_body(str(i))))[1]["data"]["video_id"] for i in range(2)]
        clock.now += 5
        _, processing = await get(session, "/v3/videos/statuses", video_ids=ids[0])
        clock.now += 5
        _, later = await get(session, "/v3/videos/statuses", video_ids=",".join([*ids, "gone"]))
        seen = await counters(session)
    _, queued = await _statuses_right_after_create()

    assert queued["data"][0]["status"] == "queued"
    assert processing["data"][0]["status"] == "processing"
    assert later == {
        "data": [
            {"video_id": ids[0], "status": "completed", "error": None},
            {"video_id": ids[1], "status": "completed", "error": None},
            {"video_id": "gone", "status": "not_found", "error": None},
        ],
        "has_more": False,
        "next_token": None,
    }
    assert seen["v3_statuses_requests"] == 2


async def _statuses_right_after_create() -> tuple[int, Any]:
    async with serve(render_seconds=10) as (_, session):
        _, created = (await create(session, v3_body()))[:2]
        return await get(session, "/v3/videos/statuses", video_ids=created["data"]["video_id"])


@pytest.mark.parametrize(("count", "status"), [(100, 200), (101, 400), (0, 400)])
async def test_statuses_take_1_to_100_ids(count: int, status: int) -> None:
    async with serve() as (_, session):
        got, answer = await get(
            session, "/v3/videos/statuses", video_ids=",".join(f"id{i}" for i in range(count))
        )
    assert got == status
    if status == 400:
        assert (answer["error"]["code"], answer["error"]["param"]) == (
            "invalid_parameter",
            "video_ids",
        )
    else:
        assert len(answer["data"]) == count


async def test_list_pages_newest_first_with_has_more_and_next_token() -> None:
    async with serve() as (_, session):
        ids = [(await create(session, v3_body(f"t{i}")))[1]["data"]["video_id"] for i in range(5)]
        pages = []
        token: str | None = None
        while True:
            params = {"limit": "2", **({"token": token} if token else {})}
            status, page = await get(session, "/v3/videos", **params)
            assert status == 200
            pages.append(page)
            token = page["next_token"]
            if not page["has_more"]:
                break

    assert [[v["id"] for v in p["data"]] for p in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[-1]["next_token"] is None
    assert all(set(v) == DETAIL_KEYS for p in pages for v in p["data"])


async def test_list_filters_by_title_substring() -> None:
    async with serve() as (_, session):
        for title in ("Welcome Ada", "Hello Bo", "Welcome Cy", "Bye"):
            await create(session, v3_body(title))
        _, first = await get(session, "/v3/videos", title="Welcome", limit="1")
        _, second = await get(session, "/v3/videos", title="Welcome", token=first["next_token"])
        _, none = await get(session, "/v3/videos", title="Nobody")

    assert [v["title"] for v in first["data"]] == ["Welcome Cy"]
    assert first["has_more"] is True
    assert ([v["title"] for v in second["data"]], second["has_more"]) == (["Welcome Ada"], False)
    assert none == {"data": [], "has_more": False, "next_token": None}


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"limit": "x"}, "limit"),
     ({"token": "bogus"}, "token")],
)  # fmt: skip
async def test_list_refuses_bad_parameters(params: dict[str, str], param: str) -> None:
    async with serve() as (_, session):
        await create(session, v3_body())
        status, answer = await get(session, "/v3/videos", **params)
    assert (status, answer["error"]["code"], answer["error"]["param"]) == (
        400,
        "invalid_parameter",
        param,
    )


async def test_v1_endpoints_answer_for_v3_videos_too() -> None:
    async with serve(render_seconds=0) as (_, session):
        _, created, _ = await create(session, v3_body())
        status, v1 = await get(
            session, "/v1/video_status.get", video_id=created["data"]["video_id"]
        )
    assert (status, v1["code"], v1["data"]["status"]) == (200, 100, "completed")


async def test_the_threaded_sandbox_hook_sees_v3_creates_too() -> None:
    seen_bodies: list[dict[str, Any]] = []

    async def first_dropped_after(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        seen_bodies.append(body)
        return await drop_after(request, handler) if len(seen_bodies) == 1 else None

    with threaded_sandbox(first_dropped_after) as (url, state):
        async with aiohttp.ClientSession(url) as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await create(session, v3_body(), key="job-1")
            status, answer, _ = await create(session, v3_body(), key="job-1")

    assert [b["type"] for b in seen_bodies] == ["studio", "studio"]
    assert (status, answer["data"]["video_id"]) == (200, next(iter(state.videos)))
    assert state.counters_view()["v3_replays"] == 1
