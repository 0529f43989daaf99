"""status: a ledger summarised with no network: counts, renders, oldest uncertain, last run,
most common errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner, Result

from engine.cli import cli
from engine.ledger import render_writes, statements
from engine.ledger.statements import Statement
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE, LedgerSpec

REFUSED = "avatar_id not found"


def _job(key: str, line: int) -> list[Statement]:
    return [
        statements.insert_job(key, line, "pending", {"id": key}, "sha", None),
        statements.mark_submitting(key, "{}", "sha", key, time.time() - 100 * line),
    ]


def mixed_ledger(store: LedgerSpec) -> None:
    """Two rendered, one rendering, one never polled, two refused alike, two uncertain
    (line 8 attempted earliest), one invalid."""
    work: list[Statement] = [statements.set_source_columns(["id"])]
    for line, key in enumerate("abcdefgh", start=1):
        work += _job(key, line)
    for key, video in (("a", "completed"), ("b", "completed"), ("c", "processing")):
        work.append(statements.mark_submitted(key, f"vid-{key}", 1))
        work.append(render_writes.render_update(key, video, None, None, None))
    work.append(statements.mark_submitted("d", "vid-d", 1))
    work.append(statements.mark_outcome("e", "failed", 1, REFUSED))
    work.append(statements.mark_outcome("f", "failed", 1, REFUSED))
    work.append(statements.mark_outcome("g", "uncertain", 1, "timed out"))
    work.append(statements.mark_outcome("h", "uncertain", 1, "timed out"))
    work.append(statements.insert_job("line-9", 9, "invalid", {"id": ""}, None, "empty id"))
    ledger = store.open()
    ledger.transaction(work)
    ledger.close()


def invoke(*args: str) -> Result:
    # No key and no address: status never needs the service.
    return CliRunner().invoke(cli, ["status", *args], env={"HEYGEN_API_KEY": None})


def test_status_counts_renders_oldest_uncertain_and_top_errors(store: LedgerSpec) -> None:
    mixed_ledger(store)
    result = invoke(*store.args(), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["jobs"] == 9
    assert summary["counts"] == {
        "pending": 0,
        "submitting": 0,
        "submitted": 4,
        "invalid": 1,
        "failed": 2,
        "uncertain": 2,
    }
    assert summary["renders"] == {"completed": 2, "processing": 1, "not_polled": 1}
    assert summary["oldest_uncertain"]["key"] == "h"
    assert 790 <= summary["oldest_uncertain"]["age_s"] <= 3600
    assert summary["top_errors"][0] == {"error": REFUSED, "jobs": 2}
    assert {e["error"] for e in summary["top_errors"]} == {REFUSED, "timed out", "empty id"}
    assert summary["last_run"] is None

    text = invoke(*store.args()).output
    assert "9 jobs: 4 submitted, 1 invalid, 2 failed, 2 uncertain" in text
    assert "2 completed, 1 processing, 1 not polled" in text
    assert "Oldest uncertain: key h (line 8, sent 13m" in text
    assert f"2 jobs: {REFUSED}" in text
    assert "Last run: none recorded." in text


def test_status_shows_the_last_run_of_the_ledger(tmp_path: Path, store: LedgerSpec) -> None:
    jobs = tmp_path / "demo.csv"
    # The last row has no product: invalid, so the run exits 1.
    jobs.write_text(
        DEMO_CSV.read_text(encoding="utf-8") + "c-099,Zed,Z,z@x.example,Co,Paris,,1.0\n",
        encoding="utf-8",
    )
    flags = ["--sandbox", "--rate", "100/s", "--no-progress", "--key-column", "contact_id"]
    run = CliRunner().invoke(
        cli, ["run", str(jobs), "--template", str(DEMO_TEMPLATE), *store.args(), *flags]
    )
    assert run.exit_code == 1, run.output
    result = invoke(*store.args(), "--json")
    last = json.loads(result.stdout)["last_run"]
    assert last["exit_code"] == 1
    assert (last["read"], last["new"], last["submitted"], last["invalid"]) == (13, 12, 12, 1)
    assert "1 jobs invalid" in last["reason"]
    assert last["finished_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))
    text = invoke(*store.args()).output
    assert "Last run: " in text
    assert ", exit 1: 13 read, 12 new, 12 submitted, 0 failed, 0 uncertain" in text


def test_status_of_a_missing_ledger_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    result = invoke("--ledger", str(tmp_path / "none.db"), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["exit_code"] == 2
    assert list(tmp_path.iterdir()) == []


def test_status_writes_nothing_to_the_ledger(tmp_path: Path, sqlite_store: LedgerSpec) -> None:
    mixed_ledger(sqlite_store)
    before = (tmp_path / "l.db").read_bytes()
    assert invoke("--ledger", str(tmp_path / "l.db")).exit_code == 0
    assert (tmp_path / "l.db").read_bytes() == before
    assert not (tmp_path / "l.db.lock").exists()


def test_status_names_the_campaigns_of_a_database_when_none_is_given(
    postgres_store: LedgerSpec,
) -> None:
    mixed_ledger(postgres_store)
    mixed_ledger(postgres_store.other("second"))
    result = invoke("--ledger", str(postgres_store.where), "--json")
    assert result.exit_code == 2
    assert "several campaigns" in json.loads(result.stdout)["reason"]
    assert "second, test" in json.loads(result.stdout)["reason"]
    one = invoke("--ledger", str(postgres_store.where), "--campaign", "second", "--json")
    assert json.loads(one.stdout)["jobs"] == 9


def test_a_campaign_for_a_ledger_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("--ledger", str(tmp_path / "l.db"), "--campaign", "x")
    assert result.exit_code == 2
    assert "--campaign applies to a PostgreSQL ledger" in result.output
