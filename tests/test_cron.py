"""The nightly cron: the same file run again sends only the rows appended since."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import cli_env, run_args, write_contacts


def ledger_state(ledger: Path) -> dict[str, tuple[Any, ...]]:
    conn = sqlite3.connect(ledger)
    try:
        rows = conn.execute(
            "SELECT key, line, status, video_id, attempts, error, updated_at FROM jobs"
        )
        return {row[0]: row[1:] for row in rows}
    finally:
        conn.close()


def nightly(jobs: Path, url: str) -> dict[str, Any]:
    done = subprocess.run(
        run_args(jobs, url, "--json"), capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_appended_rows_go_and_done_rows_stay_done(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    ledger = tmp_path / "contacts.ledger.db"
    write_contacts(jobs, 0, 10)
    with standalone_sandbox() as url:
        first = nightly(jobs, url)
        assert (first["new"], counters(url)["requests"]) == (10, 10)
        after_first = ledger_state(ledger)

        write_contacts(jobs, 10, 5, header=False)
        second = nightly(jobs, url)
        assert (second["new"], second["already_done"]) == (5, 10)
        assert counters(url)["requests"] == 15

        third = nightly(jobs, url)
        assert (third["new"], third["already_done"]) == (0, 15)
        seen = counters(url)

    assert seen["requests"] == 15
    assert seen["duplicates"] == 0
    after = ledger_state(ledger)
    assert len(after) == 15
    assert {key: after[key] for key in after_first} == after_first  # not even touched
    assert {row[1] for row in after.values()} == {"submitted"}
    assert sorted(row[0] for row in after.values()) == list(range(2, 17))
    key = cli_env()["HEYGEN_API_KEY"].encode()
    for path in tmp_path.iterdir():
        assert key not in path.read_bytes(), path  # not in the ledger, its WAL or anywhere
