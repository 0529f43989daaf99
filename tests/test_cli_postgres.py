"""The commands on a postgresql:// ledger: what differs from a ledger file (campaigns, no
file lock, no sweep of in-flight jobs). Runs, polls, downloads, exports and webhooks on
both stores are in the store-parametrised suites (test_delivery_cli, test_status_cmd)."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE, LedgerSpec
from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import cli_env
from tests.test_reconcile import job, make_body, post_video
from tests.threaded_sandbox import run_keyed, threaded_sandbox

COMMANDS_WITH_A_LEDGER = [
    ["export"],
    ["status"],
    ["poll", "--sandbox"],
    ["reconcile", "--sandbox"],
    ["download", "--to", "videos", "--sandbox"],
    ["report"],
    ["webhook", "serve", "--sandbox"],
    ["run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--sandbox"],
]


def heygen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True, text=True, env=cli_env(HEYGEN_WEBHOOK_SECRET="s"), timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS_WITH_A_LEDGER, ids=lambda c: " ".join(c[:2]))
def test_a_campaign_for_a_ledger_file_is_refused_by_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    ledger = tmp_path / "l.db"
    result = CliRunner().invoke(
        cli,
        [*command, "--ledger", str(ledger), "--campaign", "spring"],
        env={"HEYGEN_API_KEY": None, "HEYGEN_WEBHOOK_SECRET": "s"},
    )
    assert result.exit_code == 2, result.output
    assert "--campaign applies to a PostgreSQL ledger" in result.output
    assert not ledger.exists()


def test_run_names_the_campaign_after_the_jobs_file_and_report_reads_it(
    tmp_path: Path, pg_url: str
) -> None:
    with threaded_sandbox() as (url, _):
        first = run_keyed(DEMO_CSV, DEMO_TEMPLATE, pg_url, url)
        again = run_keyed(DEMO_CSV, DEMO_TEMPLATE, pg_url, url, "--json")
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert '"new": 0' in again.stdout
    assert "campaign demo" in again.stdout
    # The only campaign of the database: the other commands find it unnamed.
    target = tmp_path / "r.html"
    done = heygen("report", "--ledger", pg_url, "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert "Wrote the report of 12 jobs" in done.stderr
    assert "<html" in target.read_text(encoding="utf-8")
    assert "sk-test" not in target.read_text(encoding="utf-8")


def test_reconcile_settles_uncertain_jobs_and_leaves_jobs_in_flight_to_their_worker(
    postgres_store: LedgerSpec,
) -> None:
    with standalone_sandbox() as url:
        created = post_video(url, make_body("found"))
        with closing(postgres_store.open()) as ledger:
            ledger.transaction(
                [
                    *job("found", "uncertain", line=1, attempted_at=time.time()),
                    *job("never-arrived", "uncertain", line=2, attempted_at=time.time()),
                    # A worker may be sending this one now: only its lease may settle it.
                    *job("in-flight", "submitting", line=3, attempted_at=time.time()),
                ]
            )
        done = heygen("reconcile", *postgres_store.args(), "--base-url", url)
        assert counters(url)["requests"] == 1
    assert done.returncode == 0, done.stderr
    assert "1 found" in done.stdout
    assert "1 proven absent" in done.stdout
    with closing(postgres_store.open(create=False)) as ledger:
        found, absent, flying = (ledger.get(k) for k in ("found", "never-arrived", "in-flight"))
    assert found is not None
    assert (found.status, found.video_id) == ("submitted", created)
    assert absent is not None
    assert absent.status == "pending"
    assert flying is not None
    assert flying.status == "submitting"


def test_an_unreachable_database_is_try_again_later(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/none?host={tmp_path}&connect_timeout=1"
    result = CliRunner().invoke(cli, ["export", "--ledger", url])
    assert result.exit_code == 75, result.output
    assert "cannot reach the ledger database" in result.output
