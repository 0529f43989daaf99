"""Errors kept in the ledger are one short line (an HTML page reduced to its title), and
the API key is masked only where it stands as a whole token (issue 12 items 9 and 10)."""

from __future__ import annotations

import csv
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from engine.api.client import HeyGenClient
from engine.api.v2 import GENERATE_PATH
from engine.errors import BadRequest, error_code_and_message, make_status_error, one_line
from engine.ledger import render_writes, statements
from engine.ledger.store import Ledger
from engine.submitter.constants import ERROR_TEXT_MAX_CHARS
from tests.conftest import FixedAioresponses
from tests.processes import environment
from tests.test_signals import run_args
from tests.test_submission_sandbox import write_jobs

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "</body>\r\n</html>\r\n" + "<!-- a padding comment to defeat IE's friendly pages -->\r\n" * 6
)
BASE = "http://heygen.test"
GENERATE = BASE + GENERATE_PATH

# --- item 9: one short line -----------------------------------------------------------------


def test_an_html_page_is_its_status_and_title() -> None:
    assert error_code_and_message(NGINX_502) == (None, "502 Bad Gateway")
    assert str(make_status_error(502, NGINX_502)) == "HTTP 502: 502 Bad Gateway"


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("<!DOCTYPE html><html><body><h1>Service\n  Unavailable</h1></body></html>",
         "Service Unavailable"),
        ("<HTML><HEAD><TITLE>Error &amp; <b>outage</b></TITLE></HEAD></HTML>", "Error & outage"),
        ("<html><body><p>nothing to name it</p></body></html>", "an HTML page with no title"),
    ],
)  # fmt: skip
def test_a_page_without_a_title_is_named_by_its_heading_or_as_a_page(
    page: str, message: str
) -> None:
    assert error_code_and_message(page) == (None, message)


def test_other_text_is_one_line_and_capped() -> None:
    text = "upstream connect error\nor disconnect/reset before headers.\r\n\treset reason: " + (
        "overflow " * 100
    )
    _, message = error_code_and_message(text)
    assert "\n" not in message
    assert "\r" not in message
    assert "\t" not in message
    assert message.startswith("upstream connect error or disconnect/reset before headers.")
    assert len(message) == ERROR_TEXT_MAX_CHARS
    assert message.endswith("…")


def test_a_json_message_is_one_line_too() -> None:
    body = {"error": {"code": "invalid_parameter", "message": "bad\nvoice_id:\n  v9"}}
    assert error_code_and_message(body) == ("invalid_parameter", "bad voice_id: v9")


def test_one_line_keeps_short_text_as_it_is() -> None:
    assert one_line("HTTP 400 invalid_parameter: avatar_id not found") == (
        "HTTP 400 invalid_parameter: avatar_id not found"
    )


@pytest.mark.parametrize(
    "statement",
    [
        lambda error: statements.mark_outcome("k", "failed", 1, error),
        lambda error: render_writes.render_update("k", "failed", None, None, error),
    ],
    ids=["outcome", "render"],
)
def test_every_error_the_ledger_stores_is_one_short_line(
    tmp_path: Path, statement: Callable[[str], statements.Statement]
) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        ledger.transaction([statements.insert_job("k", 1, "pending", {}, "sha", None)])
        ledger.transaction([statement("first line\nsecond line\n" + "x" * 1000)])
        job = ledger.get("k")
    assert job is not None
    assert job.error is not None
    assert job.error.startswith("first line second line xxx")
    assert "\n" not in job.error
    assert len(job.error) <= ERROR_TEXT_MAX_CHARS


class _BadGateway(socketserver.BaseRequestHandler):
    """A proxy whose upstream never recovers: nginx's 502 page for every request."""

    def handle(self) -> None:
        self.request.recv(65536)
        body = NGINX_502.encode()
        head = f"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: {len(body)}"
        self.request.sendall(head.encode() + b"\r\n\r\n" + body)


class _Refuses(socketserver.BaseRequestHandler):
    """Refuses every job with a code and message full of the letter x."""

    def handle(self) -> None:
        self.request.recv(65536)
        body = (
            b'{"error": {"code": "rate_limit_exceeded", "message": "max text length exceeded"}, '
            b'"data": null}'
        )
        head = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}"
        self.request.sendall(head.encode() + b"\r\n\r\n" + body)


@contextmanager
def serving(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def run_then_export(tmp_path: Path, base_url: str, key: str) -> list[dict[str, str]]:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    env = environment(HEYGEN_API_KEY=key)
    ran = subprocess.run(
        run_args(jobs, base_url, "--rate", "100/s", "--max-attempts", "1"),
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    out = tmp_path / "out.csv"
    exported = subprocess.run(
        [sys.executable, "-m", "engine", "export", "--ledger", str(tmp_path / "jobs.ledger.db"),
         "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_a_502_page_that_never_recovers_is_exported_as_status_and_title(tmp_path: Path) -> None:
    with serving(_BadGateway) as base_url:
        rows = run_then_export(tmp_path, base_url, "sk-any")
    assert len(rows) == 3
    for row in rows:
        assert row["error"].endswith("HTTP 502: 502 Bad Gateway"), row["error"]
        assert "<" not in row["error"]
        assert "\n" not in row["error"]


# --- item 10: the key masked only where it stands alone -------------------------------------


def test_a_one_character_key_corrupts_no_word_of_an_error(tmp_path: Path) -> None:
    with serving(_Refuses) as base_url:
        rows = run_then_export(tmp_path, base_url, "x")
    assert [row["error"] for row in rows] == [
        "HTTP 400 rate_limit_exceeded: max text length exceeded"
    ] * 3


async def error_for(key: str, message: str, http: FixedAioresponses) -> str:
    http.post(GENERATE, status=400, payload={"error": {"code": "bad", "message": message}})
    async with HeyGenClient(BASE, key) as client:
        with pytest.raises(BadRequest) as caught:
            await client.create_video({"callback_id": "c"})
    return str(caught.value)


@pytest.mark.parametrize(
    ("key", "message", "seen"),
    [
        ("x", "rate_limit_exceeded", "rate_limit_exceeded"),
        ("x", "x-api-key x refused", "x-api-key [key] refused"),
        ("e", "the key 'e' is not valid", "the key '[key]' is not valid"),
        ("sk-live-7Hq2", "headers: X-Api-Key: sk-live-7Hq2; Accept: */*",
         "headers: X-Api-Key: [key]; Accept: */*"),
        ("sk-live-7Hq2", "key=sk-live-7Hq2&x=1", "key=[key]&x=1"),
        ("sk-live-7Hq2", "sk-live-7Hq2-other is another key", "sk-live-7Hq2-other is another key"),
    ],
)  # fmt: skip
async def test_the_key_is_masked_as_a_whole_token_only(
    http: FixedAioresponses, key: str, message: str, seen: str
) -> None:
    assert await error_for(key, message, http) == f"HTTP 400 bad: {seen}"


async def test_an_echoed_key_is_masked_before_the_message_is_cut(
    http: FixedAioresponses,
) -> None:
    """A cut through the key would leave a piece no mask recognises."""
    key = "sk-live-0123456789abcdef0123456789abcdef"
    message = "y" * (ERROR_TEXT_MAX_CHARS - 20) + " " + key + " and more"
    text = await error_for(key, message, http)
    assert key[:12] not in text
    assert "\n" not in text
