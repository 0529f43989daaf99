"""Two ledgers on one API key never take each other's videos (issue 17, item 1).

Every ledger has a campaign id, carried by every callback_id the engine sends, and
reconcile matches the whole callback_id. Run from the command line against one
sandbox shared by the runs, as one account is shared by two campaigns.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.cli.preparing import make_preparer
from engine.ledger import statements
from engine.ledger.statements import Statement
from engine.ledger.store import JobRecord, Ledger
from engine.prepare import body_sha256, canonical_json
from engine.reader import JobsFormat, open_rows
from engine.sandbox import SandboxState
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_crash_resume import cli_env
from tests.test_ledger_store import make_older_ledger
from tests.test_reconcile import post_video
from tests.threaded_sandbox import Handler, drop_after, drop_before, threaded_sandbox


def contacts(path: Path, count: int) -> Path:
    """The demo's first ``count`` contacts (c-001, c-002, ...)."""
    with DEMO_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[: count + 1]
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def run_args(jobs: Path, ledger: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "engine",
        "run",
        str(jobs),
        "--template",
        str(DEMO_TEMPLATE),
        "--key-column",
        "contact_id",
        "--ledger",
        str(ledger),
        "--base-url",
        base_url,
        "--rate",
        "200/s",
        "--no-progress",
        *extra,
    ]


def run(jobs: Path, ledger: Path, base_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        run_args(jobs, ledger, base_url, *extra),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )


def jobs_of(ledger_path: Path) -> tuple[str, dict[str, JobRecord]]:
    ledger = Ledger(ledger_path)
    try:
        campaign = ledger.campaign_id
        assert campaign is not None
        return campaign, {j.key: j for j in ledger.iter_jobs()}
    finally:
        ledger.close()


def first_attempt_of(body: dict[str, Any], seen: Counter[str], suffix: str) -> bool:
    """Whether this is the first real request for a job key ending the callback_id."""
    callback = str(body.get("callback_id", ""))
    if body.get("test") or not callback.endswith(suffix):
        return False
    seen[callback] += 1
    return seen[callback] == 1


def test_a_test_run_then_a_real_run_never_takes_the_test_video(tmp_path: Path) -> None:
    """The issue's example: the real c-002 dropped before creation is not recorded with
    the test run's c-002; reconcile proves it absent and it is sent once, for real."""
    jobs = contacts(tmp_path / "contacts.csv", 3)
    seen: Counter[str] = Counter()

    async def lose_real_c002(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        if first_attempt_of(body, seen, ":c-002"):
            return await drop_before(request, handler)
        return None

    with threaded_sandbox(lose_real_c002) as (url, state):
        trial = run(jobs, tmp_path / "trial.ledger.db", url, "--test-videos")
        real = run(jobs, tmp_path / "real.ledger.db", url)

    assert trial.returncode == 0, trial.stderr
    assert real.returncode == 0, real.stderr
    trial_campaign, trial_jobs = jobs_of(tmp_path / "trial.ledger.db")
    real_campaign, real_jobs = jobs_of(tmp_path / "real.ledger.db")
    assert trial_campaign != real_campaign
    c002 = real_jobs["c-002"]
    assert c002.status == "submitted"
    assert c002.callback_id == f"{real_campaign}:c-002"
    assert c002.video_id != trial_jobs["c-002"].video_id
    assert c002.attempts == 2
    video = state.videos[c002.video_id or ""]
    assert (video.callback_id, video.test) == (c002.callback_id, False)
    # Exactly one real video per contact, each in the real ledger.
    real_videos = {v.video_id: v for v in state.videos.values() if not v.test}
    assert sorted(v.callback_id or "" for v in real_videos.values()) == [
        f"{real_campaign}:c-00{i}" for i in (1, 2, 3)
    ]
    assert {j.video_id for j in real_jobs.values()} == set(real_videos)
    assert state.counters.created_by_callback_id == {
        **{f"{trial_campaign}:c-00{i}": 1 for i in (1, 2, 3)},
        **{f"{real_campaign}:c-00{i}": 1 for i in (1, 2, 3)},
    }


def test_two_campaigns_over_the_same_contacts_each_keep_their_own_videos(
    tmp_path: Path,
) -> None:
    """Run at once on one account; some answers are lost before the video is made and
    some after, so each ledger reconciles while the other's videos are listed too."""
    jobs = contacts(tmp_path / "contacts.csv", 12)
    seen: Counter[str] = Counter()

    async def lose_answers(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        number = int(str(body.get("callback_id", "0"))[-3:])
        if not first_attempt_of(body, seen, f"{number:03d}"):
            return None
        if number % 3 == 1:
            return await drop_before(request, handler)
        if number % 3 == 2:
            return await drop_after(request, handler)
        return None

    ledgers = [tmp_path / "spring.ledger.db", tmp_path / "autumn.ledger.db"]
    with threaded_sandbox(lose_answers) as (url, state):
        runs = [
            subprocess.Popen(
                run_args(jobs, ledger, url, "--concurrency", "3"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
            )
            for ledger in ledgers
        ]
        outcomes = [process.communicate(timeout=120) for process in runs]

    for process, (_, stderr) in zip(runs, outcomes, strict=True):
        assert process.returncode == 0, stderr
    held: list[set[str]] = []
    for ledger in ledgers:
        campaign, by_key = jobs_of(ledger)
        assert_own_videos(state, campaign, by_key)
        held.append({j.video_id or "" for j in by_key.values()})
    assert not held[0] & held[1]
    assert len(state.videos) == 24
    assert set(state.counters.created_by_callback_id.values()) == {1}


def assert_own_videos(state: SandboxState, campaign: str, by_key: dict[str, JobRecord]) -> None:
    assert sorted(by_key) == [f"c-{i:03d}" for i in range(1, 13)]
    for key, job in by_key.items():
        assert job.status == "submitted", job
        assert job.callback_id == f"{campaign}:{key}"
        assert state.videos[job.video_id or ""].callback_id == job.callback_id


def test_an_older_ledger_keeps_its_jobs_and_reconcile_still_finds_them_by_their_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger from before campaign ids: its jobs were sent with the bare key as their
    callback_id. A dry run reads it as it is; the next run gives it a campaign id, finds
    its uncertain job by that old callback_id, and takes no old row for changed."""
    jobs = contacts(tmp_path / "contacts.csv", 4)
    path = tmp_path / "contacts.ledger.db"
    preparer = make_preparer(DEMO_TEMPLATE, "contact_id", JobsFormat.CSV)
    with open_rows(str(jobs), JobsFormat.CSV) as source:
        sent = [preparer.prepare(row) for row in source.rows][:3]
    work: list[Statement] = []
    bodies = {}
    for job in sent:
        body = {**(job.body or {}), "callback_id": job.key}  # as the old engine sent it
        bodies[job.key] = body
        text = canonical_json(body)
        work += [
            statements.insert_job(job.key, job.line, "pending", job.source, None, None),
            statements.mark_submitting(job.key, text, body_sha256(body), job.key, time.time() - 60),
        ]
    work += [
        statements.mark_submitted("c-001", "old-video-1", 1),
        statements.mark_outcome("c-002", "failed", 1, "refused"),
        statements.mark_outcome("c-003", "uncertain", 1, "connection dropped", time.time() - 60),
    ]
    make_older_ledger(path, monkeypatch, work)

    with threaded_sandbox() as (url, state):
        made = post_video(url, bodies["c-003"])
        dry = run(jobs, path, url, "--dry-run", "--json")
        untouched = Ledger.read_only(path)
        assert untouched.campaign_id is None
        untouched.close()
        real = run(jobs, path, url, "--json")

    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    # c-002 failed and c-003 uncertain: neither is sent again blindly.
    assert (planned["new"], planned["already_done"], planned["not_resent"]) == (1, 1, 2)
    assert planned["changed"] == 0
    assert real.returncode == 1, real.stderr  # c-002 stays failed
    summary = json.loads(real.stdout)
    assert (summary["changed"], summary["this_run"]["reconciled_found"]) == (0, 1)
    campaign, by_key = jobs_of(path)
    assert [(k, j.status, j.callback_id) for k, j in by_key.items()] == [
        ("c-001", "submitted", "c-001"),
        ("c-002", "failed", "c-002"),
        ("c-003", "submitted", "c-003"),
        ("c-004", "submitted", f"{campaign}:c-004"),
    ]
    assert by_key["c-003"].video_id == made
    assert state.counters.created_by_callback_id == {"c-003": 1, f"{campaign}:c-004": 1}
