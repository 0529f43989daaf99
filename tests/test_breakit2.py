"""A second adversarial round, against the fixes of the first (pool ``_after_error``,
replay, ``may_have_made``, --rebind, pending rows now invalid): each failed then, and
guards its fix now."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from tests.test_crash_resume import write_contacts
from tests.threaded_sandbox import run_keyed, threaded_sandbox

TEMPLATE_V3 = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"


def _job(ledger: Path) -> tuple[str, str | None]:
    conn = sqlite3.connect(ledger)
    status, error = conn.execute("SELECT status, error FROM jobs").fetchone()
    conn.close()
    return status, error


def test_a_503_with_retry_after_only_delays_the_job_it_never_fails_it(tmp_path: Path) -> None:
    """CONTRACT 5: 503 is retried "honouring Retry-After when the service sends it", and
    a job is failed only by the service's own refusal. A maintenance 503 asking for an
    hour is read as a plain fault (make_status_error keeps no retry_after for 5xx): the
    job is retried at once with backoff and ends ``failed`` ("gave up after 2 attempts:
    HTTP 503"), though the service only asked to come back later (a 429 with the same
    Retry-After stops the run with exit 75 and leaves the job pending)."""

    async def hook(body: dict[str, object], request: web.Request, handler: object) -> object:
        return web.json_response(
            {"error": {"code": "service_unavailable", "message": "maintenance"}},
            status=503,
            headers={"Retry-After": "3600"},
        )

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        done = run_keyed(jobs, TEMPLATE_V3, ledger, url, "--max-attempts", "2", "--max-wait", "60")
        assert not state.videos
    status, error = _job(ledger)
    assert status != "failed", f"exit {done.returncode}: a job the service only delayed: {error}"


def test_a_v3_job_answered_request_in_progress_is_never_failed(tmp_path: Path) -> None:
    """409 request_in_progress says the service is processing a request with this job's
    Idempotency-Key: it may well make the video. ``may_have_made`` does not count it, so
    a later 4xx (a proxy's shaped 404, as in the first breakit round) marks the job
    ``failed``, and --retry-failed a day later (key forgotten) pays for a second video."""
    seen: list[int] = []

    async def hook(body: dict[str, object], request: web.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            return web.json_response(
                {"error": {"code": "request_in_progress", "message": "still processing"}},
                status=409,
            )
        return web.json_response(
            {"error": {"code": "voice_not_found", "message": "Voice not found"}}, status=404
        )

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, _state):  # type: ignore[arg-type]
        done = run_keyed(jobs, TEMPLATE_V3, ledger, url)
    status, error = _job(ledger)
    assert len(seen) >= 2, done.stderr
    assert status != "failed", f"a job whose request the service was processing: {error}"


def test_a_service_gone_mid_run_is_not_said_to_have_been_sent_nothing(tmp_path: Path) -> None:
    """The fix stops a run whose service stops answering mid-run with ServiceUnreachable
    (exit 2), whose message was written for a service never reached: "Nothing was sent
    and no job failed: they stay pending". Here jobs were submitted (paid) in this very
    run; a user reading "nothing was sent" may start over on a new ledger and pay twice."""
    from tests.test_breakit import run_until_the_service_goes_away

    returncode, stderr, ledger = run_until_the_service_goes_away(tmp_path)
    conn = sqlite3.connect(ledger)
    (submitted,) = conn.execute("SELECT count(*) FROM jobs WHERE status = 'submitted'").fetchone()
    conn.close()
    assert returncode == 2, stderr
    assert submitted >= 2
    assert "Nothing was sent" not in stderr, f"{submitted} jobs were sent in this run: {stderr}"


def test_rebind_never_moves_a_standalone_sandbox_trial_onto_a_real_service(
    tmp_path: Path,
) -> None:
    """README: "--rebind never moves a ledger between the sandbox and a real service". A
    standalone `heygen-batch sandbox` trial (`--base-url http://127.0.0.1:8000`) is a
    sandbox too: rebinding it to a real address would count its stand-in videos as done
    and make none of the campaign's. Loopback stands in for every real service in the
    other tests, so the rule is checked on the binding itself."""
    from contextlib import closing

    from engine.errors import ConfigError
    from engine.ledger.binding import bind_ledger
    from engine.ledger.store import Ledger
    from engine.service import Service

    trial = Service("http://127.0.0.1:8000", "sk-trial")
    real = Service("https://api.heygen.com", "sk-trial")
    proxy = Service("https://heygen-proxy.example.com", "sk-trial")
    with closing(Ledger(tmp_path / "trial.db")) as ledger:
        assert bind_ledger(ledger, trial)
        with pytest.raises(ConfigError) as refused:
            bind_ledger(ledger, real, rebind=True)
        assert "--rebind" not in str(refused.value)
    with closing(Ledger(tmp_path / "real.db")) as ledger:
        assert bind_ledger(ledger, real)
        with pytest.raises(ConfigError):
            bind_ledger(ledger, trial, rebind=True)
        assert not bind_ledger(ledger, proxy, rebind=True)  # the same service, moved
        assert not bind_ledger(ledger, proxy)


def test_the_run_summary_counts_one_429_in_the_singular(tmp_path: Path) -> None:
    """The summary's 429 line is built by hand, not by ``counted()`` (f15c147: "counts
    agree with their noun"): one 429 is said "1 requests"."""
    seen: list[int] = []

    async def hook(body: dict[str, object], request: web.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            return web.json_response(
                {"error": {"code": "rate_limit_exceeded", "message": "later"}},
                status=429,
                headers={"Retry-After": "0"},
            )
        return None

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, _state):  # type: ignore[arg-type]
        done = run_keyed(jobs, TEMPLATE_V3, ledger, url)
    assert done.returncode == 0, done.stderr
    assert "with 429" in done.stdout, done.stdout
    assert "1 requests" not in done.stdout, done.stdout


def test_a_v3_job_whose_video_was_made_behind_a_503_is_never_failed(tmp_path: Path) -> None:
    """``may_have_made`` now says a 503 made nothing. A proxy in front of the service
    (Envoy's "upstream connect error or disconnect/reset before headers", a load
    balancer whose upstream reset) answers 503 after the service took the request: the
    video is made. The retry (same key) meets a 4xx and the job is ``failed``, which
    --retry-failed reads as "nothing was created"."""
    seen: list[int] = []

    async def hook(body: dict[str, object], request: web.Request, handler: object) -> object:
        seen.append(1)
        if len(seen) == 1:
            await handler(request)  # type: ignore[operator]
            return web.Response(
                status=503,
                text="upstream connect error or disconnect/reset before headers. "
                "reset reason: connection termination",
            )
        return web.json_response(
            {"error": {"code": "voice_not_found", "message": "Voice not found"}}, status=404
        )

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        run_keyed(jobs, TEMPLATE_V3, ledger, url)
        made = len(state.videos)
    status, error = _job(ledger)
    assert made == 1
    assert status != "failed", f"a job with a video at the service is failed: {error}"


@pytest.mark.parametrize("template", ["demo-template.json", "demo-template-v3.json"])
@pytest.mark.parametrize("status", [520, 524])
def test_a_gateway_5xx_outside_500_502_504_never_fails_a_job_that_made_its_video(
    tmp_path: Path, template: str, status: int
) -> None:
    """Only 500/502/504 counted as "may have made"; any other 5xx was ``Step.FAILED``
    at once. Cloudflare's 524 ("A timeout occurred": the origin took the
    request and did not answer in 100 s) and 520 (the origin reset after the request)
    come after the service may have made the video: the job is ``failed``, which
    --retry-failed reads as "nothing was created" (V2: a second video at once). A 5xx is
    a fault, not the service's own refusal (CONTRACT 2)."""

    async def hook(body: dict[str, object], request: web.Request, handler: object) -> object:
        await handler(request)  # type: ignore[operator]
        return web.Response(
            status=status,
            text=f"<html><head><title>api.heygen.com | {status}: gateway</title></head></html>",
            content_type="text/html",
        )

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 1)
    ledger = tmp_path / "contacts.ledger.db"
    root = Path(__file__).resolve().parent.parent / "jobs"
    with threaded_sandbox(hook) as (url, state):  # type: ignore[arg-type]
        done = run_keyed(jobs, root / template, ledger, url, "--max-attempts", "2")
        made = len(state.videos)
    job_status, error = _job(ledger)
    assert made >= 1, done.stderr
    assert job_status != "failed", f"a job with a video at the service is failed: {error}"


@pytest.mark.parametrize(
    "body",
    [
        # Spring Boot's default error answer (a Java service or gateway at a wrong address).
        {"timestamp": "2026-11-29T19:00:00Z", "status": 404, "error": "Not Found",
         "path": "/v3/videos"},
        # Google Cloud Endpoints / ESP: gRPC NOT_FOUND for a path it does not serve.
        {"code": 5, "message": "Method does not exist.", "details": []},
    ],
)  # fmt: skip
def test_a_wrong_address_answering_404_in_json_fails_no_job(
    tmp_path: Path, body: dict[str, object]
) -> None:
    """``blames_address`` takes any JSON 404 with an ``error`` or ``code`` key as the
    service's own refusal of the job. Other servers' stock 404s have one too (a string
    ``error``, a small gRPC ``code``), none in HeyGen's shapes (CONTRACT 6: an ``error``
    object, or ``{"code": 400599, ...}``): a campaign pointed at the wrong host marks every
    job ``failed`` (exit 1) instead of stopping (exit 2) with the jobs pending."""

    async def hook(_: dict[str, object], request: web.Request, handler: object) -> object:
        return web.json_response(body, status=404)

    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox(hook) as (url, _state):  # type: ignore[arg-type]
        done = run_keyed(jobs, TEMPLATE_V3, ledger, url)
    conn = sqlite3.connect(ledger)
    statuses = [s for (s,) in conn.execute("SELECT status FROM jobs")]
    conn.close()
    assert "failed" not in statuses, f"exit {done.returncode}: {statuses}"
    assert done.returncode == 2, done.stderr
