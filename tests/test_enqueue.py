"""``heygen-batch enqueue``: a jobs file loaded into a campaign of a PostgreSQL ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from engine.cli import cli
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_submission_sandbox import body, write_jobs


def enqueue(jobs: Path, url: str, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        ["enqueue", str(jobs), "--key-column", "callback_id", "--ledger", url, "--json", *extra],
    )
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert summary["exit_code"] == result.exit_code, result.output
    return summary


def jobs_of(url: str, campaign: str = "jobs") -> dict[str, tuple[Any, ...]]:
    """key -> (status, request_sha256, body, callback_id, api, claimed_by)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT key, status, request_sha256, body, callback_id, api, claimed_by "
            f"FROM campaign_{campaign}.jobs"
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_each_valid_row_is_stored_pending_with_the_request_a_worker_sends(
    tmp_path: Path, pg_url: str
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    summary = enqueue(jobs, pg_url)
    assert summary["exit_code"] == 0
    assert (summary["read"], summary["added"], summary["campaign"]) == (5, 5, "jobs")
    stored = jobs_of(pg_url)
    assert len(stored) == 5
    for key, (status, sha, sent, callback_id, api, claimed_by) in stored.items():
        assert (status, api, claimed_by) == ("pending", "v2", None)
        # The body a worker sends carries the engine's callback_id, made from the key.
        assert json.loads(sent)["callback_id"] == callback_id
        assert callback_id.endswith(":" + key)
        assert len(sha) == 64


def test_the_same_file_twice_adds_nothing_and_a_changed_row_is_refreshed(
    tmp_path: Path, pg_url: str
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 4)
    enqueue(jobs, pg_url)
    first = jobs_of(pg_url)

    again = enqueue(jobs, pg_url)
    assert (again["added"], again["refreshed"], again["unchanged"]) == (0, 0, 4)
    assert jobs_of(pg_url) == first

    # One job was sent meanwhile; then the file changes under two rows.
    with psycopg.connect(pg_url) as conn:
        sent_key = sorted(first)[0]
        conn.execute(
            "UPDATE campaign_jobs.jobs SET status = 'submitted', video_id = 'v1' WHERE key = %s",
            (sent_key,),
        )
    rows = [body(n) for n in range(4)]
    for row in rows[:2]:
        row["title"] = "edited"
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    changed = enqueue(jobs, pg_url)
    assert (changed["added"], changed["refreshed"], changed["changed"]) == (0, 1, 1)
    now = jobs_of(pg_url)
    assert now[sent_key] == ("submitted", *first[sent_key][1:])  # a sent job: never touched
    refreshed = [k for k in now if k != sent_key and now[k][1] != first[k][1]]
    assert len(refreshed) == 1
    assert json.loads(now[refreshed[0]][2])["title"] == "edited"


def test_a_changed_row_a_worker_holds_is_counted_held_not_refreshed(
    tmp_path: Path, pg_url: str
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    enqueue(jobs, pg_url)
    first = jobs_of(pg_url)
    held, free = sorted(first)[:2]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE campaign_jobs.jobs SET claimed_by = 'w.1' WHERE key = %s", (held,))
    rows = [body(n) for n in range(3)]
    for row in rows:
        row["title"] = "edited"
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["enqueue", str(jobs), "--key-column", "callback_id", "--ledger", pg_url]
    said = CliRunner().invoke(cli, args)
    assert "1 job changed but held by a worker" in said.output, said.output
    now = jobs_of(pg_url)
    assert now[held][:5] == first[held][:5]  # the worker may be sending it: left as it was
    assert now[free][1] != first[free][1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE campaign_jobs.jobs SET claimed_by = NULL WHERE key = %s", (held,))
    again = enqueue(jobs, pg_url)
    assert (again["refreshed"], again["held"], again["unchanged"]) == (1, 0, 2)
    assert jobs_of(pg_url)[held][1] != first[held][1]


def test_invalid_rows_are_recorded_invalid_and_exit_1(tmp_path: Path, pg_url: str) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps(body(0)) + "\n" + json.dumps({"callback_id": "bad", "title": "x"}) + "\n",
        encoding="utf-8",
    )
    summary = enqueue(jobs, pg_url)
    assert (summary["exit_code"], summary["added"], summary["invalid"]) == (1, 1, 1)
    assert sorted(s[0] for s in jobs_of(pg_url).values()) == ["invalid", "pending"]
    # Unchanged since: counted, not news.
    again = enqueue(jobs, pg_url)
    assert (again["exit_code"], again["invalid_unchanged"]) == (0, 1)


def test_a_campaign_records_the_variable_its_key_is_read_from(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
    enqueue(jobs, pg_url, "--campaign", "Spring_2026", "--key-env", "TEAM_B_KEY")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT key_env FROM heygen_batch.campaigns WHERE name = 'spring_2026'"
        ).fetchone()
    assert row == ("TEAM_B_KEY",)


def test_a_ledger_file_is_refused_naming_run(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
    result = CliRunner().invoke(
        cli, ["enqueue", str(jobs), "--ledger", str(tmp_path / "jobs.ledger.db")]
    )
    assert result.exit_code == 2
    assert "postgresql://" in result.output
    assert "heygen-batch run" in result.output
    assert not (tmp_path / "jobs.ledger.db").exists()


def test_a_csv_through_its_template_and_from_standard_input(pg_url: str) -> None:
    args = ["--template", str(DEMO_TEMPLATE), "--key-column", "contact_id", "--ledger", pg_url]
    result = CliRunner().invoke(cli, ["enqueue", str(DEMO_CSV), *args, "--json"])
    summary = json.loads(result.stdout)
    assert (result.exit_code, summary["campaign"], summary["added"]) == (0, "demo", 12)
    assert {row[0] for row in jobs_of(pg_url, "demo").values()} == {"pending"}
    # Standard input has no name to take the campaign's from.
    piped = CliRunner().invoke(
        cli, ["enqueue", "-", "--format", "csv", *args], input=DEMO_CSV.read_text()
    )
    assert piped.exit_code == 2
    assert "--campaign" in piped.output
    named = CliRunner().invoke(
        cli,
        ["enqueue", "-", "--format", "csv", *args, "--campaign", "demo"],
        input=DEMO_CSV.read_text(),
    )
    assert named.exit_code == 0, named.output
    assert "0 added" in named.output
