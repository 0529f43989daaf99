"""The sandbox served from a thread of the test process, with a hook on creates.

CLI runs in subprocesses reach it by its URL, and so share one account the way
two campaigns on one API key do; the test reads what it created from its state and
decides, through the hook, which request to drop or to answer wrongly.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.sandbox import SandboxConfig, SandboxState, create_app
from engine.sandbox.app import STATE
from tests.test_crash_resume import cli_env

CREATE_PATHS = ("/v2/video/generate", "/v3/videos")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Sees each create body (parsed; V2 or v3) before the sandbox; may answer in its place.
Hook = Callable[[dict[str, Any], web.Request, Handler], Awaitable[web.StreamResponse | None]]


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with no answer (the client cannot tell if a video was made)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()


async def drop_before(request: web.Request, handler: Handler) -> web.StreamResponse:
    return drop(request)


async def drop_after(request: web.Request, handler: Handler) -> web.StreamResponse:
    await handler(request)  # the video is made
    return drop(request)


@contextmanager
def threaded_sandbox(
    hook: Hook | None = None,
    config: SandboxConfig | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[tuple[str, SandboxState]]:
    """Yield (base URL, state) of a sandbox served until the block ends."""
    app = create_app(config, clock=clock)

    @web.middleware
    async def intercept(request: web.Request, handler: Handler) -> web.StreamResponse:
        if hook is not None and request.method == "POST" and request.path in CREATE_PATHS:
            body = json.loads(await request.read())
            answer = await hook(body, request, handler)
            if answer is not None:
                return answer
        return await handler(request)

    app.middlewares.append(intercept)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)

    async def start() -> str:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        base_url = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield base_url, app[STATE]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def created_per_callback(jobs: Path, template: Path | None, tmp_path: Path, *extra: str) -> Any:
    """``run`` (``--base-url`` a threaded sandbox): the finished process, and the
    videos the sandbox made per callback_id."""
    args = [
        sys.executable, "-m", "engine", "run", str(jobs),
        *(["--template", str(template)] if template else []),
        "--ledger", str(tmp_path / "l.db"), "--rate", "200/s", "--no-progress", *extra,
    ]  # fmt: skip
    with threaded_sandbox() as (url, state):
        done = subprocess.run(
            [*args, "--base-url", url],
            capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
        )  # fmt: skip
    return done, dict(state.counters.created_by_callback_id)


def run_keyed(jobs: Path, template: Path, ledger: Path | str, url: str, *extra: str) -> Any:
    """``run`` keyed by ``contact_id`` against ``url``: the finished process."""
    args = [
        sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template),
        "--key-column", "contact_id", "--ledger", str(ledger), "--base-url", url,
        "--rate", "200/s", "--no-progress", *extra,
    ]  # fmt: skip
    return subprocess.run(
        args, capture_output=True, text=True, env=cli_env(), timeout=120, check=False
    )
