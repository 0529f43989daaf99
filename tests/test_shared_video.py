"""One video is never recorded for two jobs without a word (issue 17 item 5, issue 12 item 7)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.ledger.store import Ledger
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_campaign_ids import contacts, jobs_of, run_args
from tests.test_cli_end_to_end import cli
from tests.test_crash_resume import cli_env
from tests.threaded_sandbox import Handler, threaded_sandbox

HELD = "the service answered with video_id {video}, which job c-001 already holds; to be reconciled"


def test_a_second_sandbox_run_never_hands_out_a_video_id_again(tmp_path: Path) -> None:
    """The issue's example: ``run --sandbox --limit 1``, then ``run --sandbox``."""
    ledger = tmp_path / "demo.db"
    args = ("run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--ledger", str(ledger))
    first = cli(*args, "--sandbox", "--limit", "1", "--json")
    second = cli(*args, "--sandbox", "--json")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["counts"]["submitted"] == 12
    assert "already holds" not in second.stderr
    reopened = Ledger(ledger)
    video_ids = [j.video_id for j in reopened.iter_jobs()]
    reopened.close()
    assert len(video_ids) == 12
    assert len(set(video_ids)) == 12


def test_an_answer_naming_another_jobs_video_is_flagged_then_settled(tmp_path: Path) -> None:
    """The service answers c-002 with c-001's video_id and makes nothing: c-002 is left
    uncertain, both keys named; the next run proves it absent and sends it once."""
    jobs = contacts(tmp_path / "contacts.csv", 3)
    ledger = tmp_path / "contacts.ledger.db"
    seen: Counter[str] = Counter()

    async def answer_c002_with_c001s_video(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        callback = str(body.get("callback_id"))
        seen[callback] += 1
        if not callback.endswith(":c-002") or seen[callback] > 1:
            return None
        held = next(v for v in state.videos.values() if str(v.callback_id).endswith(":c-001"))
        return web.json_response({"error": None, "data": {"video_id": held.video_id}})

    with threaded_sandbox(answer_c002_with_c001s_video) as (url, state):
        patient = cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="3600")
        args = run_args(jobs, ledger, url, "--concurrency", "1", "--json")
        flagged = subprocess.run(args, capture_output=True, text=True, env=patient, timeout=120)
        campaign, by_key = jobs_of(ledger)
        settled = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        _, after = jobs_of(ledger)

    first_video = by_key["c-001"].video_id
    message = HELD.format(video=first_video)
    assert flagged.returncode == 1, flagged.stderr
    assert json.loads(flagged.stdout)["counts"]["uncertain"] == 1
    assert f"job c-002: {message}" in flagged.stderr
    c002 = by_key["c-002"]
    assert (c002.status, c002.video_id, c002.error) == ("uncertain", None, message)
    assert (by_key["c-001"].status, by_key["c-003"].status) == ("submitted", "submitted")

    assert settled.returncode == 0, settled.stderr
    assert after["c-001"].video_id == first_video
    assert after["c-002"].status == "submitted"
    assert len({j.video_id for j in after.values()}) == 3
    assert state.videos[after["c-002"].video_id or ""].callback_id == f"{campaign}:c-002"
    assert state.counters.created_by_callback_id == {f"{campaign}:c-00{i}": 1 for i in (1, 2, 3)}
