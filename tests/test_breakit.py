"""Adversarial reproductions found after the v3, render-slot, delivery and first-day work
was merged: each failed then, and guards its fix now."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine.api.client import HeyGenClient
from engine.errors import EngineError

KEY = "sk-SECRET-breakit-0123456789"


async def test_a_redirected_status_call_never_carries_the_api_key_to_another_host() -> None:
    """A GET the service (or a proxy in front of it) answers with a redirect to another
    origin must not take X-Api-Key along: aiohttp re-sends session headers on redirect."""
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Api-Key"))
        return web.json_response({"code": 100, "data": {"id": "v1", "status": "completed"}})

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", elsewhere)
    async with TestServer(other_app, host="127.0.0.1") as other:
        target = str(other.make_url("/v1/video_status.get"))

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound(target + "?" + request.query_string)

        api_app = web.Application()
        api_app.router.add_get("/v1/video_status.get", redirect)
        async with (
            TestServer(api_app, host="127.0.0.1") as api,
            HeyGenClient(str(api.make_url("")), KEY) as client,
        ):
            with contextlib.suppress(EngineError):
                await client.video_status("v1")
    assert KEY not in seen, "the API key was sent to another host after a redirect"


def test_a_rotated_api_key_never_leads_to_every_job_being_sent_again(tmp_path: Path) -> None:
    """HeyGen users rotate keys on the same account. The refusal offers --rebind for that
    before any new ledger (which would send every job again); with it the campaign goes
    on, nothing sent twice."""
    from tests.test_crash_resume import cli_env, write_contacts
    from tests.threaded_sandbox import run_keyed, threaded_sandbox

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 5)
    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox() as (url, state):
        first = run_keyed(jobs, template, ledger, url)
        assert first.returncode == 0, first.stderr
        assert len(state.videos) == 5
        args = [
            sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template),
            "--key-column", "contact_id", "--base-url", url, "--rate", "200/s",
            "--no-progress", "--ledger", str(ledger),
        ]  # fmt: skip
        rotated = cli_env(HEYGEN_API_KEY="sk-rotated-same-account")
        refused = subprocess.run(args, capture_output=True, text=True, env=rotated, timeout=120)
        rebound = subprocess.run(
            [*args, "--rebind"], capture_output=True, text=True, env=rotated, timeout=120
        )
        again = subprocess.run(args, capture_output=True, text=True, env=rotated, timeout=120)
        videos = len(state.videos)
    assert refused.returncode == 2
    said = refused.stderr
    assert said.index("--rebind") < said.index("--ledger "), said
    assert "paid) again" in said
    assert rebound.returncode == 0, rebound.stderr
    assert again.returncode == 0, again.stderr  # bound to the new key from now on
    assert videos == 5


def test_a_row_made_invalid_after_a_429_stop_is_not_sent_with_its_old_body(
    tmp_path: Path,
) -> None:
    """A 429 beyond --max-wait leaves the job pending with the body it was tried with.
    The user then blanks the row (the contact asked not to be contacted): the next
    run counts the row invalid, yet the end-of-run settle sends the stale stored body."""
    import csv

    from aiohttp import web as aioweb

    from tests.threaded_sandbox import run_keyed, threaded_sandbox

    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    header = ["contact_id", "first_name", "last_name", "email", "company", "city", "product",
              "speed"]  # fmt: skip

    def write(first_name: str) -> None:
        with jobs.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerow(["c-1", first_name, "Lee", "a@x.example", "Acme", "Oslo", "Suite", "1.0"])

    refuse = {"on": True}

    async def hook(body: dict[str, object], request: aioweb.Request, handler: object) -> object:
        if refuse["on"]:
            return aioweb.json_response(
                {"error": {"code": "rate_limit_exceeded", "message": "later"}},
                status=429,
                headers={"Retry-After": "7200"},
            )
        return None

    write("Ann")
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        first = run_keyed(jobs, template, ledger, url, "--max-wait", "60")
        assert first.returncode == 75, first.stderr
        assert not state.videos
        refuse["on"] = False
        write("")  # blanked: the row is invalid now, and must not be sent
        second = run_keyed(jobs, template, ledger, url)
        assert not state.videos, (
            f"a video was made for a row this run calls invalid (exit {second.returncode}): "
            f"{[v.title for v in state.videos.values()]}"
        )


def test_a_v3_job_whose_first_attempt_made_a_video_is_never_failed(tmp_path: Path) -> None:
    """Attempt 1 makes the video and the answer is lost; attempt 2 (same key) meets a
    4xx. The job is marked ``failed``, which --retry-failed reads as "nothing was
    created": the video made is never recorded, and a later resend can make a second."""
    import sqlite3

    from aiohttp import web as aioweb

    from tests.test_crash_resume import write_contacts
    from tests.threaded_sandbox import drop, run_keyed, threaded_sandbox

    seen: list[int] = []

    async def hook(body: dict[str, object], request: aioweb.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            await handler(request)  # type: ignore[operator]
            return drop(request)
        return aioweb.json_response(
            {"error": {"code": "voice_not_found", "message": "Voice not found"}}, status=404
        )

    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        run_keyed(jobs, template, ledger, url)
        made = len(state.videos)
    conn = sqlite3.connect(ledger)
    status, error = conn.execute("SELECT status, error FROM jobs").fetchone()
    conn.close()
    assert made == 1
    assert status != "failed", f"a job with a video at the service is failed: {error}"


def test_replaying_an_uncertain_v3_job_that_meets_a_4xx_does_not_fail_it(tmp_path: Path) -> None:
    """The same at reconcile: an uncertain v3 job (its request made a video, the answer
    was lost) is replayed with its key; a 4xx to the replay marks it ``failed``
    (engine/ledger/replay.py), though the first request made its video."""
    import sqlite3

    from aiohttp import web as aioweb

    from tests.test_crash_resume import write_contacts
    from tests.threaded_sandbox import drop, run_keyed, threaded_sandbox

    seen: list[int] = []

    async def hook(body: dict[str, object], request: aioweb.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            await handler(request)  # type: ignore[operator]
            return drop(request)
        return aioweb.json_response(
            {"error": {"code": "avatar_not_found", "message": "Avatar not found"}}, status=404
        )

    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        run_keyed(jobs, template, ledger, url, "--max-attempts", "1")
        made = len(state.videos)
    conn = sqlite3.connect(ledger)
    status, error = conn.execute("SELECT status, error FROM jobs").fetchone()
    conn.close()
    assert (made, len(seen)) == (1, 2), "the replay at the run's end should have been sent"
    assert status != "failed", f"a job with a video at the service is failed: {error}"


@pytest.mark.parametrize("status", [301, 404, 405])
def test_a_v3_run_at_a_wrong_address_fails_no_job(tmp_path: Path, status: int) -> None:
    """V2's create_error reads a redirect, a 405 or an unshaped 404 as a wrong address
    (the run stops, exit 2, jobs pending); v3's returns every error as it came, so a v3
    campaign pointed at http:// instead of https:// (301) or a wrong path (404) marks
    every job ``failed``, exit 1. CONTRACT 2: a job is failed only by the service's
    own refusal."""
    import sqlite3
    import threading

    from tests.test_crash_resume import cli_env, write_contacts

    async def answer(request: web.Request) -> web.Response:
        if status == 301:
            raise web.HTTPMovedPermanently("https://api.heygen.example" + request.path)
        return web.Response(status=status, text=f"{status}: Not Found")

    import asyncio

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    ledger = tmp_path / "contacts.ledger.db"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template),
             "--key-column", "contact_id", "--ledger", str(ledger), "--base-url",
             f"http://127.0.0.1:{port}", "--no-progress", "--rate", "100/s"],
            capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
        )  # fmt: skip
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    conn = sqlite3.connect(ledger)
    statuses = [s for (s,) in conn.execute("SELECT status FROM jobs")]
    conn.close()
    assert "failed" not in statuses, f"exit {done.returncode}: {statuses}: {done.stderr[-300:]}"
    assert done.returncode == 2, done.stderr


def test_retry_failed_a_day_later_makes_no_second_video_for_a_job_that_made_one(
    tmp_path: Path,
) -> None:
    """End to end, the cost of the two bugs above: the job whose first attempt made its
    video is ``failed``; --retry-failed the next day (the service has forgotten the
    Idempotency-Key after 24 hours) makes a second, paid video."""
    import time

    from aiohttp import web as aioweb

    from tests.test_crash_resume import write_contacts
    from tests.threaded_sandbox import drop, run_keyed, threaded_sandbox

    seen: list[int] = []
    later = [0.0]

    async def hook(body: dict[str, object], request: aioweb.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            await handler(request)  # type: ignore[operator]
            return drop(request)
        if len(seen) == 2:
            return aioweb.json_response(
                {"error": {"code": "voice_not_found", "message": "Voice not found"}}, status=404
            )
        return None

    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook, clock=lambda: time.time() + later[0]) as (url, state):  # type: ignore[arg-type]
        run_keyed(jobs, template, ledger, url)
        later[0] = 25 * 3600.0  # the next day, at the service
        run_keyed(jobs, template, ledger, url, "--retry-failed")
        assert len(state.videos) == 1, "one job, two paid videos"


def run_until_the_service_goes_away(tmp_path: Path) -> tuple[int, str, Path]:
    """A v3 run of 20 jobs against a standalone sandbox killed (SIGKILL) once two jobs
    are submitted, so later connections are refused: (exit code, stderr, ledger)."""
    import signal
    import sqlite3
    import time

    from tests.processes import environment
    from tests.test_crash_resume import cli_env, write_contacts

    template = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 20)
    ledger = tmp_path / "contacts.ledger.db"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "engine", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment(),
    )  # fmt: skip
    assert sandbox.stdout is not None
    url = sandbox.stdout.readline().rsplit(" ", 1)[1].strip()
    run = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template),
         "--key-column", "contact_id", "--ledger", str(ledger), "--base-url", url,
         "--no-progress", "--rate", "5/s", "--max-attempts", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if ledger.exists():
                with contextlib.suppress(sqlite3.Error):
                    conn = sqlite3.connect(ledger)
                    (done,) = conn.execute(
                        "SELECT count(*) FROM jobs WHERE status = 'submitted'"
                    ).fetchone()
                    conn.close()
                    if done >= 2:
                        break
        sandbox.send_signal(signal.SIGKILL)
        sandbox.wait(10)
        _, stderr = run.communicate(timeout=120)
    finally:
        for process in (run, sandbox):
            if process.poll() is None:
                process.kill()
                process.wait()
        sandbox.stdout.close()
    return run.returncode, stderr, ledger


def test_a_service_gone_mid_run_fails_no_job(tmp_path: Path) -> None:
    """The service answers, then its address refuses connections (restarted, network
    down). Every job left was retried --max-attempts times and marked ``failed`` ("gave
    up after N attempts: cannot connect"), for good: CONTRACT 2 says a job is ``failed``
    only by the service's own refusal, and --retry-failed that nothing was created."""
    import sqlite3

    _, _, ledger = run_until_the_service_goes_away(tmp_path)
    conn = sqlite3.connect(ledger)
    failed = conn.execute(
        "SELECT count(*), max(error) FROM jobs WHERE status = 'failed'"
    ).fetchone()
    conn.close()
    assert failed[0] == 0, (
        f"{failed[0]} jobs failed though the service never refused them: {failed[1]}"
    )
