"""The API key never reaches the ledger, the export or the logs, whatever the server sends."""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api.client import HeyGenClient
from engine.errors import EngineError
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE

KEY = "SECRET-KEY-4242-never-print"
BODY = {"callback_id": "c-1"}


class _Garbage(socketserver.BaseRequestHandler):
    """Answers every request with a status line aiohttp cannot parse."""

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(b"HTTP/1.1 2x0 WHAT\r\nContent-Length: 0\r\n\r\n")


class _Echo(socketserver.BaseRequestHandler):
    """A proxy that echoes the request (headers and all) into a 400 error message."""

    def handle(self) -> None:
        seen = self.request.recv(65536).decode("latin-1").replace('"', "'").replace("\r\n", " ")
        body = ('{"error": {"code": "bad", "message": "' + seen + '"}, "data": null}').encode()
        head = f"HTTP/1.1 400 Bad Request\r\nContent-Length: {len(body)}\r\n"
        self.request.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)


@pytest.fixture(params=[_Garbage, _Echo], ids=["garbage-status", "echoing-proxy"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler: type[socketserver.BaseRequestHandler] = request.param
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as srv:
        srv.daemon_threads = True
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{srv.server_address[1]}"
        srv.shutdown()


async def test_client_errors_never_carry_the_key(server: str) -> None:
    async with HeyGenClient(server, KEY) as client:
        with pytest.raises(EngineError) as info:
            await client.create_video(BODY)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.args)
    assert KEY not in repr(getattr(info.value, "body", None))


def test_a_run_against_such_a_server_keeps_the_key_out_of_every_file(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEN_")}
    env["HEYGEN_API_KEY"] = KEY
    run = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE),
         "--ledger", str(ledger), "--base-url", server, "--rate", "100/s", "--max-attempts", "1"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    out = tmp_path / "out.csv"
    export = subprocess.run(
        [sys.executable, "-m", "engine", "export", "--ledger", str(ledger), "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    for text in (run.stdout, run.stderr, export.stdout, export.stderr):
        assert KEY not in text
    for path in tmp_path.iterdir():
        assert KEY.encode() not in path.read_bytes(), path
