"""The sandbox's delivery side: media at its URLs, endpoint registration, signed webhooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from click.testing import CliRunner

from engine.cli import cli
from engine.delivery.signature import sign
from engine.sandbox import SandboxConfig, create_app
from engine.sandbox.webhooks import WEBHOOKS, WebhookSender
from tests.test_sandbox import FakeClock, make_body

SECRET = "whsec_sandbox-test"


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def sandbox(
    clock: FakeClock, **options: Any
) -> AsyncIterator[tuple[str, WebhookSender, aiohttp.ClientSession]]:
    app = create_app(SandboxConfig(render_seconds=10, **options), clock=clock)
    async with serve_app(app) as url, aiohttp.ClientSession() as session:
        yield url, app[WEBHOOKS], session


async def create(session: aiohttp.ClientSession, url: str, callback_id: str) -> str:
    async with session.post(url + "/v2/video/generate", json=make_body(callback_id)) as answer:
        video_id: str = (await answer.json())["data"]["video_id"]
        return video_id


@asynccontextmanager
async def receiver(status: int = 200) -> AsyncIterator[tuple[str, list[tuple[bytes, str]]]]:
    got: list[tuple[bytes, str]] = []

    async def take(request: web.Request) -> web.Response:
        got.append((await request.read(), request.headers.get("signature", "")))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/webhook", take)
    async with serve_app(app) as url:
        yield url + "/webhook", got


async def test_a_finished_render_is_delivered_signed() -> None:
    clock = FakeClock()
    async with (
        receiver() as (hook_url, got),
        sandbox(clock, webhook_url=hook_url, webhook_secret=SECRET) as (url, sender, session),
    ):
        video_id = await create(session, url, "cb-1")
        sender.scan()
        await sender.settled()
        assert got == []  # still rendering: nothing yet
        clock.now += 11
        sender.scan()
        sender.scan()  # a render ends once: delivered once
        await sender.settled()
        assert sender.delivered == 1
    [(body, signature)] = got
    assert signature == sign(SECRET, body)
    event = json.loads(body)
    assert event["event_type"] == "avatar_video.success"
    assert event["event_data"]["video_id"] == video_id
    assert event["event_data"]["callback_id"] == "cb-1"


async def test_a_failed_render_is_delivered_as_fail_and_a_refusal_is_counted() -> None:
    clock = FakeClock()
    async with (
        receiver(status=500) as (hook_url, got),
        sandbox(clock, webhook_url=hook_url, webhook_secret=SECRET, render_failure_ratio=1) as (
            url,
            sender,
            session,
        ),
    ):
        await create(session, url, "cb-1")
        clock.now += 11
        sender.scan()
        await sender.settled()
        assert (sender.delivered, sender.failed) == (0, 1)
        async with session.get(url + "/_sandbox/webhooks") as answer:
            assert await answer.json() == {"delivered": 0, "failed": 1}
    [(body, _)] = got
    assert json.loads(body)["event_type"] == "avatar_video.fail"
    assert "msg" in json.loads(body)["event_data"]


async def test_registered_endpoints_get_their_own_secret() -> None:
    clock = FakeClock()
    async with receiver() as (hook_url, got), sandbox(clock) as (url, sender, session):
        payload = {"url": hook_url, "events": ["avatar_video.success", "avatar_video.fail"]}
        async with session.post(url + "/v3/webhooks/endpoints", json=payload) as answer:
            assert answer.status == 200
            data = (await answer.json())["data"]
        assert data["secret"].startswith("whsec_")
        assert data["events"] == payload["events"]
        await create(session, url, "cb-1")
        clock.now += 11
        sender.scan()
        await sender.settled()
    [(body, signature)] = got
    assert signature == sign(data["secret"], body)


async def test_media_urls_serve_bytes_until_they_expire() -> None:
    clock = FakeClock()
    async with sandbox(clock, media_url_lifetime_s=60) as (url, _, session):
        video_id = await create(session, url, "cb-1")
        clock.now += 11
        async with session.get(url + "/v1/video_status.get", params={"video_id": video_id}) as a:
            media = (await a.json())["data"]["video_url"]
        async with session.get(media) as answer:
            assert answer.status == 200
            assert answer.content_length == len(await answer.read()) > 0
        clock.now += 61
        async with session.get(media) as answer:
            assert answer.status == 403
        async with session.get(url + "/videos/unknown.mp4?expires=9999999999") as answer:
            assert answer.status == 404


def test_the_sandbox_refuses_a_webhook_url_without_a_secret() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--webhook-url", "http://127.0.0.1:9/webhook"])
    assert result.exit_code == 2
    assert "--webhook-secret" in result.output


async def test_no_delivery_without_a_target() -> None:
    clock = FakeClock()
    async with sandbox(clock) as (url, sender, session):
        await create(session, url, "cb-1")
        clock.now += 11
        sender.scan()
        await sender.settled()
        assert (sender.delivered, sender.failed) == (0, 0)
