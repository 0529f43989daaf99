"""kill -9 at random points of a run against a standalone sandbox, then resume.

Whatever instant the kill lands on (start-up, feeding, mid-request, the closing
reconcile), the next runs must finish the campaign with every row submitted and
no video created twice at the service.
"""

from __future__ import annotations

import csv
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_TEMPLATE
from tests.processes import counters, environment, standalone_sandbox

ROWS = 300
HEADER = ["contact_id", "first_name", "last_name", "email", "company", "city", "product", "speed"]


def write_contacts(path: Path, start: int, count: int, *, header: bool = True) -> None:
    """Rows whose rendered bodies all differ, so their hash keys do too."""
    with path.open("a" if not header else "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(HEADER)
        for i in range(start, start + count):
            writer.writerow(
                [f"c-{i:05d}", f"Ann{i}", "Lee", f"a{i}@x.example", "Acme", "Oslo", "Suite", "1.0"]
            )


def cli_env(**extra: str) -> dict[str, str]:
    settings = {"HEYGEN_API_KEY": "sk-test-not-a-real-key", "HEYGEN_BATCH_RECONCILE_GRACE_S": "0"}
    return environment(**{**settings, **extra})


def run_args(jobs: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "engine",
        "run",
        str(jobs),
        "--template",
        str(DEMO_TEMPLATE),
        "--base-url",
        base_url,
        "--rate",
        "500/s",
        "--concurrency",
        "16",
        "--no-progress",
        *extra,
    ]


def ledger_rows(ledger: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(ledger)
    try:
        return list(conn.execute("SELECT key, status, video_id FROM jobs ORDER BY line"))
    finally:
        conn.close()


def campaign_id(ledger: Path) -> str:
    conn = sqlite3.connect(ledger)
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'campaign_id'").fetchone()
        return str(row[0])
    finally:
        conn.close()


def run_and_kill(args: list[str], delay_s: float) -> int:
    """Start a run, kill -9 it after ``delay_s`` unless it ended first; its exit code."""
    with subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env()
    ) as proc:
        try:
            return proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            return proc.wait(timeout=10)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_kill_9_then_resume_sends_every_row_exactly_once(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, ROWS)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox(
        "--latency-ms", "20", "--latency-spread-ms", "10", "--seed", str(seed)
    ) as url:
        args = run_args(jobs, url)
        # Start-up takes a few tenths of a second and sending 300 rows at 500/s about
        # as long again, so these delays land anywhere from the imports to the end;
        # sending alone takes 0.6 s, so the first kill always finds the run going.
        first = run_and_kill(args, rng.uniform(0.3, 0.75))
        assert first == -signal.SIGKILL, "the first kill should land mid-run"
        for _ in range(rng.randint(0, 2)):
            run_and_kill(args, rng.uniform(0.3, 0.9))
        final = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=60)
        assert final.returncode == 0, final.stderr
        seen = counters(url)

    rows = ledger_rows(ledger)
    assert len(rows) == ROWS
    assert {status for _, status, _ in rows} == {"submitted"}
    assert len({video_id for _, _, video_id in rows}) == ROWS
    assert seen["duplicates"] == 0
    assert seen["created"] == ROWS
    # The callback_id is the campaign id and the job key: every row's video was created once.
    campaign = campaign_id(ledger)
    assert seen["created_by_callback_id"] == {f"{campaign}:{key}": 1 for key, _, _ in rows}
