"""A v3 campaign end to end against the sandbox (``--base-url`` a threaded sandbox, so the
test sees what it made): the Idempotency-Key on every attempt, a dropped answer retried
with it, an uncertain job settled by replaying it, and the stops v3's answers call for."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.ledger.store import Ledger
from engine.prepare.keys import idempotency_key
from engine.sandbox import SandboxConfig
from tests.test_crash_resume import cli_env
from tests.threaded_sandbox import Handler, drop, run_keyed, threaded_sandbox

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "jobs" / "demo.csv"
V3_TEMPLATE = ROOT / "jobs" / "demo-template-v3.json"
V2_TEMPLATE = ROOT / "jobs" / "demo-template.json"
ROWS = 12


def export(ledger: Path) -> list[dict[str, str]]:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "export", "--ledger", str(ledger)],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=True,
    )  # fmt: skip
    return list(csv.DictReader(io.StringIO(done.stdout)))


def test_a_v3_campaign_runs_with_one_key_per_job_and_exports_its_api(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    with threaded_sandbox() as (url, state):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url)
        again = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url)
        made = dict(state.counters.created_by_idempotency_key)
        v3_requests = state.counters.v3_requests
    assert done.returncode == 0, done.stderr
    assert again.returncode == 0, again.stderr
    assert len(made) == ROWS
    assert set(made.values()) == {1}
    assert v3_requests == ROWS  # the second run sent nothing
    with closing(Ledger(ledger)) as store:
        campaign = store.campaign_id
        assert campaign is not None
        assert store.counts()["submitted"] == ROWS
        jobs = list(store.iter_jobs())
    assert set(made) == {idempotency_key(campaign, j.key) for j in jobs}
    rows = export(ledger)
    assert {r["api"] for r in rows} == {"v3"}
    header = list(rows[0])
    tail = ["error", "api", "callback_id", "video_page_url"]
    assert header[header.index("error") : header.index("error") + 4] == tail


def test_v2_and_v3_jobs_share_a_ledger_and_each_records_its_api(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    first_half = tmp_path / "first.csv"
    lines = DEMO_CSV.read_text().splitlines()
    first_half.write_text("\n".join(lines[:7]) + "\n")
    with threaded_sandbox() as (url, _):
        v2 = run_keyed(first_half, V2_TEMPLATE, ledger, url)
        v3 = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url)
        poll = subprocess.run(
            [sys.executable, "-m", "engine", "poll", "--ledger", str(ledger), "--base-url", url],
            capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
        )  # fmt: skip
    assert v2.returncode == 0, v2.stderr
    assert v3.returncode == 0, v3.stderr
    assert poll.returncode == 0, poll.stderr
    apis = {r["contact_id"]: r["api"] for r in export(ledger)}
    assert sorted(apis.values()).count("v2") == 6
    assert sorted(apis.values()).count("v3") == ROWS - 6
    with closing(Ledger(ledger)) as store:
        assert all(j.video_status is not None for j in store.iter_jobs())


def test_an_answer_dropped_after_the_video_was_made_is_retried_with_its_key(
    tmp_path: Path,
) -> None:
    """The one video is replayed, not made again, and no job is left uncertain."""
    dropped: list[str] = []

    async def drop_first_after(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        if len(dropped) < 3:
            dropped.append(request.headers["Idempotency-Key"])
            await handler(request)  # the video is made
            return drop(request)
        return None

    ledger = tmp_path / "l.db"
    with threaded_sandbox(drop_first_after) as (url, state):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url)
        made = dict(state.counters.created_by_idempotency_key)
        replays = state.counters.v3_replays
    assert done.returncode == 0, done.stderr
    assert set(made.values()) == {1}
    assert len(made) == ROWS
    assert replays >= len(set(dropped))
    with closing(Ledger(ledger)) as store:
        assert store.counts()["submitted"] == ROWS
        assert store.counts()["uncertain"] == 0


def test_an_uncertain_v3_job_is_settled_by_replaying_its_key(tmp_path: Path) -> None:
    """--max-attempts 1: the dropped job is uncertain after its only attempt; the end of
    the run replays its key (no grace, no listing) and gets back the one video."""
    dropped: list[str] = []

    async def drop_one(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        if not dropped:
            dropped.append(request.headers["Idempotency-Key"])
            await handler(request)
            return drop(request)
        return None

    ledger = tmp_path / "l.db"
    with threaded_sandbox(drop_one) as (url, state):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url, "--max-attempts", "1")
        made = dict(state.counters.created_by_idempotency_key)
        lists = state.counters.list_requests
    assert done.returncode == 0, done.stderr
    assert made[dropped[0]] == 1
    assert set(made.values()) == {1}
    assert lists == 0
    with closing(Ledger(ledger)) as store:
        counts = store.counts()
    assert (counts["submitted"], counts["uncertain"]) == (ROWS, 0)


def test_request_in_progress_waits_and_resends_the_same_key_without_spending_an_attempt(
    tmp_path: Path,
) -> None:
    keys: list[str] = []

    async def busy_once(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        key = request.headers["Idempotency-Key"]
        keys.append(key)
        if keys.count(key) == 1 and len(set(keys)) == 1:
            error = {"code": "request_in_progress", "message": "still processing"}
            return web.json_response({"error": error}, status=409)
        return None

    ledger = tmp_path / "l.db"
    with threaded_sandbox(busy_once) as (url, _):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url, "--max-attempts", "1")
    assert done.returncode == 0, done.stderr
    assert keys.count(keys[0]) == 2
    with closing(Ledger(ledger)) as store:
        first = next(
            j
            for j in store.iter_jobs()
            if idempotency_key(store.campaign_id or "", j.key) == keys[0]
        )
    assert (first.status, first.attempts) == ("submitted", 1)


def refuse(status: int, code: str, message: str) -> Any:
    async def hook(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    return hook


def test_a_trial_keys_daily_cap_stops_the_run_with_exit_3_saying_so(tmp_path: Path) -> None:
    hook = refuse(429, "trial_video_limit_exceeded", "trial limit reached")
    ledger = tmp_path / "l.db"
    with threaded_sandbox(hook) as (url, _):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url)
    assert done.returncode == 3, done.stderr
    assert "daily cap" in done.stderr
    with closing(Ledger(ledger)) as store:
        assert store.counts()["failed"] == 0


def test_out_of_credit_on_v3_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    hook = refuse(402, "insufficient_credit", "top up")
    with threaded_sandbox(hook) as (url, _):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, tmp_path / "l.db", url)
    assert done.returncode == 3, done.stderr
    assert "out of credit" in done.stderr


def test_a_legacy_v2_answer_stops_the_run_telling_to_move_to_v3(tmp_path: Path) -> None:
    for status, code, message in [
        (410, "gone", "Gone"),
        (400, "internal_error", "This avatar needs Avatar IV: use Avatar IV or Avatar V"),
        (400, "deprecated", "This endpoint will be removed on 2026-10-31"),
    ]:
        ledger = tmp_path / f"{status}-{code}.db"
        with threaded_sandbox(refuse(status, code, message)) as (url, _):
            done = run_keyed(DEMO_CSV, V2_TEMPLATE, ledger, url)
        assert done.returncode == 2, done.stderr
        assert "--api v3" in done.stderr
        assert "schema --api v3" in done.stderr
        with closing(Ledger(ledger)) as store:
            assert store.counts()["failed"] == 0


def test_an_api_the_template_contradicts_exits_2_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "l.db"
    with threaded_sandbox() as (url, state):
        wrong = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url, "--api", "v2")
        other = run_keyed(DEMO_CSV, V2_TEMPLATE, ledger, url, "--api", "v3")
        requests = state.counters.requests
    assert (wrong.returncode, other.returncode) == (2, 2)
    assert "--api v2, but its top-level `type` makes it a v3 body" in wrong.stderr
    assert "--api v3, but its top-level `video_inputs` makes it a v2 body" in other.stderr
    assert requests == 0
    assert not ledger.exists()


def test_a_template_of_neither_shape_exits_2_naming_the_fields(tmp_path: Path) -> None:
    template = tmp_path / "t.json"
    template.write_text(json.dumps({"avatar_id": "a", "script": "Hi {{ first_name }}"}))
    done = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(DEMO_CSV), "--template", str(template)],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "neither a top-level `video_inputs`" in done.stderr
    assert "nor a top-level `type`" in done.stderr


def test_jsonl_bodies_go_each_to_its_api_and_a_shapeless_one_is_invalid(
    tmp_path: Path,
) -> None:
    template = json.loads(V3_TEMPLATE.read_text())
    v3_body = {**template, "script": "Hello there", "voice_settings": {"speed": 1.0}}
    v2_body = json.loads(V2_TEMPLATE.read_text())
    v2_body["video_inputs"][0]["voice"]["speed"] = 1.0
    v2_body["video_inputs"][0]["voice"]["input_text"] = "Hi"
    v2_body["video_inputs"][1]["voice"]["input_text"] = "Bye"
    jobs = tmp_path / "bodies.jsonl"
    lines = [v3_body, v2_body, {"script": "no shape"}]
    jobs.write_text("\n".join(json.dumps(b) for b in lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(jobs), "--json"],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [r["ok"] for r in rows[:3]] == [True, True, False]
    assert "neither" in rows[2]["errors"][0]["message"]
    pinned = subprocess.run(
        [sys.executable, "-m", "engine", "validate", str(jobs), "--json", "--api", "v3"],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert [json.loads(line).get("ok") for line in pinned.stdout.splitlines()[:3]] == [
        True,
        False,
        False,
    ]


def test_test_videos_on_a_v3_template_is_refused_with_exit_2(tmp_path: Path) -> None:
    for extra in ([], ["--dry-run"]):
        done = run_keyed(
            DEMO_CSV, V3_TEMPLATE, tmp_path / "l.db", "http://127.0.0.1:9", "--test-videos", *extra
        )
        assert done.returncode == 2, done.stderr
        assert "v3 API has no test videos" in done.stderr


def test_poll_asks_about_v3_renders_a_hundred_at_a_time(tmp_path: Path) -> None:
    """Rendering: one bulk call for the whole campaign. Done: each completed render's
    own status gives its URLs and page, which the export shows."""
    ledger = tmp_path / "l.db"
    poll = [sys.executable, "-m", "engine", "poll", "--ledger", str(ledger), "--base-url"]
    slow = SandboxConfig(render_seconds=3600)
    with threaded_sandbox(config=slow) as (url, state):
        assert run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url).returncode == 0
        done = subprocess.run(
            [*poll, url], capture_output=True, text=True, env=cli_env(), timeout=60, check=False
        )
        bulk, single = state.counters.v3_statuses_requests, state.counters.v3_status_requests
    assert done.returncode == 0, done.stderr
    assert (bulk, single) == (1, 0)
    with closing(Ledger(ledger)) as store:
        assert {j.video_status for j in store.iter_jobs()} <= {"pending", "processing"}
    with threaded_sandbox(config=SandboxConfig(render_seconds=0)) as (url, state):
        assert run_keyed(DEMO_CSV, V3_TEMPLATE, tmp_path / "m.db", url).returncode == 0
        poll[-2] = str(tmp_path / "m.db")
        done = subprocess.run(
            [*poll, url], capture_output=True, text=True, env=cli_env(), timeout=60, check=False
        )
        bulk, single = state.counters.v3_statuses_requests, state.counters.v3_status_requests
    assert done.returncode == 0, done.stderr
    assert (bulk, single) == (1, ROWS)
    rows = export(tmp_path / "m.db")
    assert {r["video_status"] for r in rows} == {"completed"}
    assert all(r["video_page_url"] and r["video_url"] for r in rows)


def test_a_replay_that_meets_a_fault_is_tried_again_before_the_run_ends(tmp_path: Path) -> None:
    """Dropped after creation (one attempt allowed), then its first replay answered 409:
    the run waits a moment and replays again, ending with the one video and no
    uncertain job."""
    seen: list[str] = []

    async def drop_then_busy(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        key = request.headers["Idempotency-Key"]
        if not seen or key == seen[0]:
            seen.append(key)
        if len(seen) == 1:
            await handler(request)
            return drop(request)
        if len(seen) == 2 and key == seen[0]:
            error = {"code": "request_in_progress", "message": "still processing"}
            return web.json_response({"error": error}, status=409)
        return None

    ledger = tmp_path / "l.db"
    with threaded_sandbox(drop_then_busy) as (url, state):
        done = run_keyed(DEMO_CSV, V3_TEMPLATE, ledger, url, "--max-attempts", "1")
        made = dict(state.counters.created_by_idempotency_key)
    assert done.returncode == 0, done.stderr
    assert len(seen) == 3  # sent, replayed into a 409, replayed again
    assert made[seen[0]] == 1
    with closing(Ledger(ledger)) as store:
        assert store.counts()["uncertain"] == 0


def test_a_v2_endpoint_missing_at_the_address_names_the_move_to_v3_too(tmp_path: Path) -> None:
    async def not_found(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        return web.Response(status=404, text="404: Not Found")

    with threaded_sandbox(not_found) as (url, _):
        done = run_keyed(DEMO_CSV, V2_TEMPLATE, tmp_path / "l.db", url)
    assert done.returncode == 2, done.stderr
    assert "--base-url" in done.stderr
    assert "--api v3" in done.stderr
