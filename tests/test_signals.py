"""SIGINT and SIGTERM on a real ``heygen-batch run``: exit 130, a consistent ledger, no duplicate.

The run is a subprocess against a standalone sandbox answering slowly, so
requests are in flight when the signal lands.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from engine.ledger.store import Ledger
from tests.processes import counters, environment, standalone_sandbox
from tests.test_submission_sandbox import write_jobs

JOBS = 40


def run_args(jobs: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "engine",
        "run",
        str(jobs),
        "--key-column",
        "callback_id",
        "--base-url",
        base_url,
        "--no-progress",
        *extra,
    ]


def interrupt_run(
    args: list[str],
    base_url: str,
    sig: signal.Signals,
    *,
    counter: str = "requests",
    at_least: int = 4,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Start a run, send ``sig`` once the sandbox's ``counter`` reaches ``at_least``
    (four requests by default); its exit code, stdout and stderr."""
    run = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or environment(HEYGEN_API_KEY="sk-any"),
    )
    try:
        deadline = time.monotonic() + 30
        while counters(base_url)[counter] < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(sig)
        out, err = run.communicate(timeout=60)  # guards against a hang, not a timing check
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    return run.returncode, out, err


def rows_read(out: str) -> int:
    """The "Read N rows" of a run's summary."""
    match = re.search(r"^Read (\d+) rows", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


def ledger_statuses(path: Path) -> dict[str, str]:
    with closing(Ledger(path)) as ledger:
        return {job.key: job.status for job in ledger.iter_jobs()}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_exits_130_with_a_consistent_ledger(
    tmp_path: Path, sig: signal.Signals
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    ledger = tmp_path / "jobs.ledger.db"
    with standalone_sandbox("--latency-ms", "300") as base_url:
        code, out, err = interrupt_run(
            run_args(jobs, base_url, "--rate", "20/s", "--concurrency", "4"), base_url, sig
        )
        assert "This run:" in out  # the summary, even when interrupted
        assert code == 130, err
        assert "Interrupted" in err
        first = ledger_statuses(ledger)
        seen = counters(base_url)
        assert seen["duplicates"] == 0
        assert set(first.values()) <= {"submitted", "pending", "uncertain"}
        assert "pending" in first.values()  # it really stopped early
        assert len(first) == rows_read(out)  # every row read is in the ledger
        made = seen["created_by_callback_id"]
        # Each body's callback_id is sent behind the ledger's campaign id.
        with closing(Ledger(ledger)) as opened:
            sent = {key: f"{opened.campaign_id}:{key}" for key in first}
        assert all(sent[key] in made for key, status in first.items() if status == "submitted")
        assert all(sent[key] not in made for key, status in first.items() if status == "pending")

        # The next run goes on where this one stopped and sends nothing twice.
        again = subprocess.run(
            run_args(jobs, base_url, "--rate", "200/s", "--concurrency", "16", "--json"),
            capture_output=True,
            text=True,
            env=environment(HEYGEN_API_KEY="sk-any"),
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["counts"]["submitted"] == JOBS
        final = counters(base_url)
    assert final["duplicates"] == 0
    assert final["created"] == JOBS


def test_a_signal_while_requests_outlast_the_grace_still_exits_130(tmp_path: Path) -> None:
    """In-flight requests slower than the grace period are cancelled; the run must not hang
    (it once did, awaiting a put into the full feed queue while being cancelled)."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 400)
    ledger = tmp_path / "jobs.ledger.db"
    with standalone_sandbox("--latency-ms", "20000") as base_url:
        code, out, err = interrupt_run(
            run_args(jobs, base_url, "--rate", "200/s", "--concurrency", "4"),
            base_url,
            signal.SIGINT,
        )
    assert code == 130, err
    statuses = ledger_statuses(ledger)
    assert set(statuses.values()) <= {"pending", "uncertain"}
    assert list(statuses.values()).count("uncertain") == 4
    # Queued jobs never marked, cancelled with the rest, are recorded all the same.
    assert len(statuses) == rows_read(out)
