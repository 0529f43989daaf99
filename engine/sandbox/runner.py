"""Starting and stopping a sandbox on a TCP port (loopback unless told otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from yarl import URL

from engine.sandbox.app import STATE, create_app
from engine.sandbox.config import SandboxConfig
from engine.sandbox.state import SandboxState
from engine.sandbox.webhooks import WEBHOOKS

#: In-flight handlers (e.g. ones sleeping for injected latency) get this long at exit.
SHUTDOWN_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RunningSandbox:
    base_url: str
    state: SandboxState

    @property
    def config(self) -> SandboxConfig:
        return self.state.config


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.time,
    state_file: Path | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve a sandbox for the block; port 0 picks a free port.

    With ``state_file``, the videos of an earlier sandbox are loaded from it and this
    one's are saved back at the end, so ``run --sandbox`` then ``poll --sandbox``
    find the same videos.
    """
    app = create_app(config, clock=clock)
    state = app[STATE]
    if state_file is not None:
        state.load(state_file)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        base_url = str(URL.build(scheme="http", host=bound_host, port=bound_port))
        app[WEBHOOKS].origin = base_url
        yield RunningSandbox(base_url=base_url, state=state)
    finally:
        await runner.cleanup()
        if state_file is not None:
            state.save(state_file)


async def serve_forever(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (or cancellation), then shut down cleanly.

    ``on_ready`` gets the base URL once the port is bound, which with port 0 is the
    only way to learn it.
    """
    async with running_sandbox(config, host, port) as sandbox:
        if on_ready is not None:
            on_ready(sandbox.base_url)
        await until_stopped()


async def until_stopped() -> None:
    """Return on SIGINT or SIGTERM (or when cancelled): a server's clean way out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        # Not available on Windows event loops; Ctrl-C still ends asyncio.run there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
