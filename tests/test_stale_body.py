"""A resend uses the body the ledger shows, never a stale one (issue 17, item 8)."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.request.model import TextVoiceSettings
from tests.test_campaign_ids import contacts, jobs_of, run_args
from tests.test_cli_end_to_end import cli
from tests.test_crash_resume import cli_env
from tests.threaded_sandbox import Handler, drop_before, threaded_sandbox


def rewrite(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_an_edited_row_held_back_then_gone_is_resent_with_its_new_body(tmp_path: Path) -> None:
    """Uncertain → proven absent → row edited → held back by --limit → next file lacks
    the row: the body resent is the edited one, as the ledger and the export show."""
    original = contacts(tmp_path / "contacts.csv", 2)
    with original.open(encoding="utf-8", newline="") as f:
        header, first, second = list(csv.reader(f))
    assert (first[0], second[0], second[1]) == ("c-001", "c-002", "Liam")
    edited = rewrite(tmp_path / "edited.csv", [header, first, ["c-002", "Noah", *second[2:]]])
    without = rewrite(tmp_path / "without.csv", [header, first])
    ledger = tmp_path / "contacts.ledger.db"
    seen: Counter[str] = Counter()

    async def lose_first_c002(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        callback = str(body.get("callback_id"))
        seen[callback] += 1
        if callback.endswith(":c-002") and seen[callback] == 1:
            return await drop_before(request, handler)
        return None

    def run(jobs: Path, *extra: str, grace: str = "0") -> dict[str, Any]:
        done = subprocess.run(
            run_args(jobs, ledger, url, "--json", *extra),
            capture_output=True,
            text=True,
            env=cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S=grace),
            timeout=120,
        )
        summary: dict[str, Any] = json.loads(done.stdout)
        assert summary["exit_code"] == done.returncode, done.stderr
        return summary

    with threaded_sandbox(lose_first_c002) as (url, state):
        assert run(original, grace="3600")["counts"]["uncertain"] == 1
        held = run(edited, "--limit", "0")
        assert (held["this_run"]["reconciled_absent"], held["held_by_limit"]) == (1, 1)
        assert held["counts"] == {**held["counts"], "submitted": 1, "pending": 1}
        resent = run(without)
        assert resent["exit_code"] == 0
        assert resent["counts"]["submitted"] == 2
        again = run(edited)
        campaign, by_key = jobs_of(ledger)

    # What was sent is the edited row.
    video = state.videos[by_key["c-002"].video_id or ""]
    assert video.title == "Welcome Noah O'Connor (Contoso)"
    voice = video.request.video_inputs[0].voice
    assert isinstance(voice, TextVoiceSettings)
    assert voice.input_text.startswith("Hi Noah! ")
    assert state.counters.created_by_callback_id == {f"{campaign}:c-001": 1, f"{campaign}:c-002": 1}
    # What the ledger shows is what was sent.
    out = tmp_path / "results.csv"
    exported = cli("export", "--ledger", str(ledger), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8", newline="") as f:
        rows = {row["key"]: row for row in csv.DictReader(f)}
    assert (rows["c-002"]["first_name"], rows["c-002"]["video_id"]) == ("Noah", video.video_id)
    assert rows["c-002"]["callback_id"] == video.callback_id == f"{campaign}:c-002"
    # And the edited file, run again, is what the ledger holds: nothing changed, nothing new.
    assert (again["new"], again["already_done"], again["changed"]) == (0, 2, 0)
    assert again["exit_code"] == 0
