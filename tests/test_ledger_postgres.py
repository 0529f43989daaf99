"""The PostgreSQL store's own parts: placeholders, campaigns and their schemas, the guard,
the claim trigger. What both stores must do alike is in the store-parametrised suites."""

from __future__ import annotations

import io
import json
import threading
from contextlib import closing

import psycopg
import pytest

from engine.errors import ConfigError, without_password
from engine.export import export_ledger
from engine.ledger import statements
from engine.ledger.database import Fenced, LedgerStoreError
from engine.ledger.open import is_database_url, open_ledger, open_read_only
from engine.ledger.postgres.campaigns import campaign_name, name_from_jobs
from engine.ledger.postgres.connection import bind, translate
from engine.ledger.writer import BatchWriter


def test_marks_are_translated_once_and_literals_are_left_alone() -> None:
    sql = "SELECT '?' || ?, 'it''s %' FROM t WHERE a LIKE '%x' AND b = ? AND c % 2 = 0"
    assert translate(sql) == (
        "SELECT '?' || %s, 'it''s %' FROM t WHERE a LIKE '%x' AND b = %s AND c %% 2 = 0",
        False,
    )
    assert translate(sql) is translate(sql)  # cached per SQL text
    text, params = bind("UPDATE j SET a = ?2 WHERE b = ?1 OR c = ?1", ("x", 7))
    assert text == "UPDATE j SET a = %(p2)s WHERE b = %(p1)s OR c = %(p1)s"
    assert params == {"p1": "x", "p2": 7}
    with pytest.raises(ValueError, match="mixes"):
        translate("SELECT ?, ?1")


def test_a_url_is_told_from_a_path_and_shown_without_its_password() -> None:
    assert is_database_url("postgresql://u@h/db")
    assert is_database_url("POSTGRES://u@h/db")
    assert not is_database_url("runs/postgresql.ledger.db")
    assert without_password("postgresql://bob:s3cret@db.example:5432/x") == (
        "postgresql://bob@db.example:5432/x"
    )


def test_campaign_names_follow_one_rule() -> None:
    assert campaign_name("Spring_2026") == "spring_2026"
    for bad in ("", "a-b", "x" * 41, "ünï"):
        with pytest.raises(ConfigError, match=r"letters, digits and _"):
            campaign_name(bad)
    assert name_from_jobs("runs/Spring Leads-2026.csv") == "spring_leads_2026"
    assert name_from_jobs("x" * 40 + ".csv") == "x" * 40
    stem = "q4_2026_enterprise_outreach_wave_one_customers"
    long = [name_from_jobs(f"{stem}_{region}.csv") for region in ("emea", "apac")]
    assert long[0] != long[1]  # two files, two campaigns, as two ledger files would be
    assert all(campaign_name(name) == name and name.startswith(stem[:31]) for name in long)
    assert name_from_jobs(f"runs/{stem}_emea.csv") == long[0]  # the same file, the same name
    with pytest.raises(ConfigError, match="--campaign"):
        name_from_jobs("-")


def test_a_job_goes_from_insert_to_export_on_postgresql(pg_url: str) -> None:
    with closing(open_ledger(pg_url, campaign="smoke")) as ledger:
        assert ledger.features.concurrent_workers
        assert ledger.file is None
        assert "campaign smoke" in ledger.describe()
        ledger.transaction(
            [
                statements.set_source_columns(["name"]),
                statements.insert_job("a", 1, "pending", {"name": "Zoë 🎬"}, "sha", None),
            ]
        )
        ledger.transaction([statements.mark_submitting("a", "{}", "sha", "cb:a", 1.5)])
        assert ledger.counts()["submitting"] == 1
        ledger.transaction([statements.mark_submitted("a", "vid-1", 1)])
        job = ledger.get("a")
        assert job is not None
        assert (job.status, job.video_id, job.attempts, job.attempted_at) == (
            "submitted",
            "vid-1",
            1,
            1.5,
        )
        out = io.StringIO()
        assert export_ledger(ledger, out, "jsonl") == 1
        exported = json.loads(out.getvalue())
        assert (exported["name"], exported["status"], exported["video_id"]) == (
            "Zoë 🎬",
            "submitted",
            "vid-1",
        )
        assert len(ledger.campaign_id or "") == 12


def test_campaigns_of_one_database_are_apart(pg_url: str) -> None:
    with closing(open_ledger(pg_url, campaign="one")) as one:
        one.transaction([statements.insert_job("a", 1, "pending", {}, "s", None)])
    with closing(open_ledger(pg_url, campaign="two")) as two:
        assert two.counts()["pending"] == 0
        two_id = two.campaign_id
    with closing(open_ledger(pg_url, campaign="One", create=False)) as again:
        assert again.counts()["pending"] == 1
        assert again.campaign_id != two_id
    with pytest.raises(ConfigError, match=r"several campaigns.*--campaign.*one, two"):
        open_ledger(pg_url, create=False)
    with pytest.raises(ConfigError, match=r"no campaign 'three'.*one, two"):
        open_ledger(pg_url, campaign="three", create=False)


def test_the_only_campaign_is_the_default_and_read_only_writes_nothing(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="no campaign yet"):
        open_ledger(pg_url, create=False)
    open_ledger(pg_url, campaign="only").close()
    with closing(open_read_only(pg_url)) as ledger:
        assert ledger.campaign == "only"
        with pytest.raises(LedgerStoreError, match="read-only"):
            ledger.transaction([statements.insert_job("a", 1, "pending", {}, "s", None)])


def test_a_campaign_given_for_a_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="--campaign applies to a PostgreSQL ledger"):
        open_ledger("runs/x.ledger.db", campaign="x")


def test_concurrent_first_opens_make_one_schema(pg_url: str) -> None:
    errors: list[BaseException] = []

    def first_open() -> None:
        try:
            open_ledger(pg_url, campaign="race").close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first_open) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute("SELECT count(*) FROM campaign_race.migrations").fetchone()
    assert versions == (1,)


def test_a_guard_that_finds_no_row_rolls_the_transaction_back(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE fence (id TEXT, fence BIGINT)")
        conn.execute("INSERT INTO fence VALUES ('w1', 1)")
    guard = ("SELECT 1 FROM public.fence WHERE id = ? AND fence = ? FOR SHARE", ("w1", 1))
    with closing(open_ledger(pg_url, campaign="c", guard=guard)) as ledger:
        ledger.transaction([statements.insert_job("a", 1, "pending", {}, "s", None)])
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE fence SET fence = 2")
        with pytest.raises(Fenced, match="lease"):
            ledger.transaction([statements.insert_job("b", 2, "pending", {}, "s", None)])
        assert ledger.get("b") is None
        # The writer's own connection keeps the guard.
        with closing(ledger.reopen()) as writer, pytest.raises(Fenced):
            writer.transaction([statements.insert_job("b", 2, "pending", {}, "s", None)])


def test_a_job_made_pending_again_is_released_by_its_worker(pg_url: str) -> None:
    with closing(open_ledger(pg_url, campaign="c")) as ledger:
        ledger.transaction([statements.insert_job("a", 1, "pending", {}, "s", None)])
        claim = "UPDATE jobs SET claimed_by = 'w1' WHERE key = 'a'"
        ledger.transaction([(claim, ())])
        ledger.transaction([statements.mark_submitting("a", "{}", "s", "a", 1.0)])
        claimed = "SELECT claimed_by FROM jobs WHERE key = 'a'"
        assert ledger.query(claimed) == [("w1",)]
        ledger.transaction([statements.mark_outcome("a", "uncertain", 1, "timeout", 2.0)])
        assert ledger.query(claimed) == [("w1",)]
        ledger.transaction([statements.reconciled_absent("a")])
        assert ledger.query(claimed) == [(None,)]


async def test_the_batch_writer_commits_on_a_connection_of_its_own(pg_url: str) -> None:
    with closing(open_ledger(pg_url, campaign="w")) as ledger:
        writer = BatchWriter(ledger.reopen)
        writer.start()
        await writer.write_durably(
            *(statements.insert_job(f"k{n}", n, "pending", {}, "s", None) for n in range(50))
        )
        assert ledger.counts()["pending"] == 50
        writer.write(
            *(statements.mark_submitting(f"k{n}", "{}", "s", None, 1.0) for n in range(50))
        )
        await writer.close()
        assert ledger.counts()["submitting"] == 50
        assert writer.commits == 2
