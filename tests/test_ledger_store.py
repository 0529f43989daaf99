"""The ledger: a file's schema, versioned migrations and WAL; and, on both stores, what
each statement may change."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.ledger import migrations, render_writes, statements
from engine.ledger.database import LedgerStoreError
from engine.ledger.migrations import MIGRATIONS
from engine.ledger.open import open_read_only
from engine.ledger.store import Ledger
from tests.conftest import LedgerSpec
from tests.test_reconcile import job

SECTION_4 = {"key", "line", "status", "video_id", "attempts", "error", "request_sha256"}
SECTION_4 |= {"updated_at", "video_status", "video_url", "thumbnail_url", "source"}


def test_a_new_ledger_is_wal_with_the_contract_columns(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        assert columns >= SECTION_4
        migrations = conn.execute("SELECT version, name FROM migrations").fetchall()
        assert migrations == [(i, name) for i, (name, _) in enumerate(MIGRATIONS, start=1)]
    finally:
        conn.close()


def test_migrations_run_once_however_often_the_ledger_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    first = conn.execute("SELECT version, applied_at FROM migrations").fetchall()
    conn.close()
    for _ in range(3):
        Ledger(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version, applied_at FROM migrations").fetchall() == first
    conn.close()


def test_connections_opening_a_new_file_together_agree(tmp_path: Path) -> None:
    for attempt in range(10):
        path = tmp_path / f"l{attempt}.db"
        start = threading.Barrier(4)
        failures: list[BaseException] = []

        def open_it(
            path: Path = path,
            start: threading.Barrier = start,
            failures: list[BaseException] = failures,
        ) -> None:
            start.wait()
            try:
                Ledger(path).close()
            except BaseException as err:
                failures.append(err)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just some notes, certainly not SQLite\n" * 20)
    with pytest.raises(ConfigError, match="not a heygen-batch ledger"):
        Ledger(path)
    with pytest.raises(ConfigError, match="no such ledger"):
        Ledger(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_the_source_row_is_kept_with_its_types(store: LedgerSpec) -> None:
    ledger = store.open()
    # 2**70: a JSONL cell the fast JSON writer cannot spell; kept exactly all the same.
    source = {"name": "Zoë 🎬", "score": 7, "tags": ["a"], "none": None, "big": 2**70}
    ledger.transaction(
        [
            statements.set_source_columns(list(source)),
            statements.insert_job("k", 4, "pending", source, "sha", None),
        ]
    )
    record = ledger.get("k")
    assert record is not None
    assert record.source == source
    assert record.line == 4
    assert ledger.source_columns() == list(source)
    ledger.close()


def test_a_crashed_runs_in_flight_jobs_become_uncertain(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(
        [
            *job("flying", "submitting"),
            *job("done", "submitted", video_id="v1"),
            *job("waiting", "pending"),
        ]
    )
    flying = ledger.get("flying")
    assert flying is not None
    assert flying.body is not None
    assert flying.attempted_at is not None
    ledger.transaction([statements.in_flight_to_uncertain(0.0)])
    assert ledger.counts() == {
        "pending": 1,
        "submitting": 0,
        "submitted": 1,
        "invalid": 0,
        "failed": 0,
        "uncertain": 1,
    }
    after = ledger.get("flying")
    assert after is not None
    # The stored body is what a proven-absent job is sent again with.
    assert after.body == flying.body
    assert after.callback_id == "flying"
    ledger.close()


def test_reconcile_statements_only_move_unsettled_jobs(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(
        [*job("done", "submitted", video_id="v1"), *job("sure", "pending"), *job("u", "uncertain")]
    )
    ledger.transaction(
        [
            statements.reconciled_found("done", "other-video"),
            statements.reconciled_absent("done"),
            statements.reconciled_absent("sure"),
        ]
    )
    done = ledger.get("done")
    assert done is not None
    assert (done.status, done.video_id) == ("submitted", "v1")
    ledger.transaction([statements.reconciled_found("u", "v2")])
    found = ledger.get("u")
    assert found is not None
    assert (found.status, found.video_id, found.body) == (
        "submitted",
        "v2",
        None,
    )
    ledger.close()


def test_a_pending_job_is_refreshed_from_the_file_but_a_sent_one_never(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction([*job("p", "pending"), *job("s", "submitted", video_id="v")])
    ledger.transaction(
        [
            statements.refresh_pending("p", 9, "new-sha", {"name": "new"}, None, "{}", "cb"),
            statements.refresh_pending("s", 9, "new-sha", {"name": "new"}, None, "{}", "cb"),
        ]
    )
    p, s = ledger.get("p"), ledger.get("s")
    assert p is not None
    assert (p.line, p.request_sha256, p.source) == (9, "new-sha", {"name": "new"})
    # Never sent: it gets its body and callback_id when it is marked, not before.
    assert (p.body, p.callback_id) == (None, None)
    assert s is not None
    assert (s.line, s.request_sha256, s.callback_id) == (1, "sha-s", "s")
    ledger.close()


def test_a_pending_job_keeping_a_body_to_resend_takes_the_files_body(store: LedgerSpec) -> None:
    """Proven absent, then edited: what is resent, stored and shown must agree."""
    ledger = store.open()
    ledger.transaction([*job("a", "uncertain"), statements.reconciled_absent("a")])
    ledger.transaction(
        [statements.refresh_pending("a", 4, "new-sha", {"name": "Bo"}, "fp", '{"new":1}', "c1:a")]
    )
    a = ledger.get("a")
    assert a is not None
    assert (a.status, a.body, a.request_sha256, a.callback_id, a.source) == (
        "pending",
        '{"new":1}',
        "new-sha",
        "c1:a",
        {"name": "Bo"},
    )
    assert [j.key for j in ledger.resendable()] == ["a"]
    ledger.close()


def test_an_answer_with_a_video_another_job_holds_is_flagged_never_recorded(
    store: LedgerSpec,
) -> None:
    ledger = store.open()
    ledger.transaction(
        [*job("c-001", "submitted", video_id="vid-1"), *job("c-002", "submitting", line=2)]
    )
    # Several answers in one batch check each other too.
    ledger.transaction(
        [
            statements.mark_submitted("c-002", "vid-1", 1),
            *job("c-003", "submitting", line=3),
            statements.mark_submitted("c-003", "vid-3", 1),
            *job("c-004", "submitting", line=4),
            statements.mark_submitted("c-004", "vid-3", 2),
        ]
    )
    second, fourth = ledger.get("c-002"), ledger.get("c-004")
    assert second is not None
    assert fourth is not None
    assert (second.status, second.video_id, second.attempts) == ("uncertain", None, 1)
    assert second.error == (
        "the service answered with video_id vid-1, which job c-001 already holds; to be reconciled"
    )
    # Its body stays, to be resent should reconcile prove it absent.
    assert second.body is not None
    assert second.sent_at is not None
    assert (fourth.status, fourth.video_id) == ("uncertain", None)
    assert ledger.shared_videos() == [
        ("c-002", second.error),
        ("c-004", "the service answered with video_id vid-3, which job c-003 already holds; "
         "to be reconciled"),
    ]  # fmt: skip
    assert ledger.known_video_ids(["vid-1", "vid-3"]) == {"vid-1", "vid-3"}
    # The same answer for the job holding the video changes nothing.
    ledger.transaction([statements.mark_submitted("c-001", "vid-1", 1)])
    first = ledger.get("c-001")
    assert first is not None
    assert (first.status, first.video_id) == ("submitted", "vid-1")
    ledger.close()


def test_reconcile_never_gives_a_job_a_video_another_job_holds(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(
        [*job("c-001", "submitted", video_id="vid-1"), *job("c-002", "uncertain", line=2)]
    )
    ledger.transaction([statements.reconciled_found("c-002", "vid-1")])
    flagged = ledger.get("c-002")
    assert flagged is not None
    assert (flagged.status, flagged.video_id, flagged.error) == (
        "uncertain",
        None,
        "reconcile found video_id vid-1, which job c-001 already holds; still uncertain",
    )
    ledger.transaction([statements.reconciled_found("c-002", "vid-2")])
    found = ledger.get("c-002")
    assert found is not None
    assert (found.status, found.video_id, found.error) == ("submitted", "vid-2", None)
    ledger.close()


def test_a_ledger_gets_a_campaign_id_once_and_keeps_it(store: LedgerSpec) -> None:
    first = store.open()
    campaign = first.campaign_id
    first.close()
    other = store.other("b").open()

    assert campaign is not None
    assert re.fullmatch(r"[0-9a-f]{12}", campaign)
    assert other.campaign_id not in (None, campaign)
    again = store.open(create=False)
    assert again.campaign_id == campaign
    with closing(open_read_only(store.where, campaign=store.campaign)) as read_only:
        assert read_only.campaign_id == campaign
    other.close()
    again.close()


def make_older_ledger(
    path: Path, monkeypatch: pytest.MonkeyPatch, work: Sequence[statements.Statement] = ()
) -> None:
    """A ledger as the release before campaign ids left it, holding ``statements``."""
    names = [name for name, _ in MIGRATIONS]
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", MIGRATIONS[: names.index("campaign id")])
        Ledger(path).close()
        # Today's statements write columns later migrations add: they are there only
        # while they are written.
        with closing(sqlite3.connect(path)) as conn:
            for column, kind in _LATER_COLUMNS:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        ledger = Ledger(path)
        ledger.transaction(work)
        ledger.close()
        with closing(sqlite3.connect(path)) as conn:
            for column, _ in _LATER_COLUMNS:
                conn.execute(f"ALTER TABLE jobs DROP COLUMN {column}")


_LATER_COLUMNS = (
    ("service_offset", "REAL"),
    ("api", "TEXT NOT NULL DEFAULT 'v2'"),
    ("first_attempted_at", "REAL"),
    ("video_page_url", "TEXT"),
    ("subtitle_url", "TEXT"),
    ("failure_code", "TEXT"),
    ("failure_message", "TEXT"),
    ("estimated_seconds", "REAL"),
)


def test_an_older_ledger_gets_a_campaign_id_when_opened_to_write_and_reads_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    make_older_ledger(path, monkeypatch)

    old = Ledger.read_only(path)
    assert old.campaign_id is None
    old.close()
    opened = Ledger(path)
    campaign = opened.campaign_id
    opened.close()
    assert campaign is not None
    assert re.fullmatch(r"[0-9a-f]{12}", campaign)


def test_renders_to_check_pages_through_unfinished_submitted_jobs(store: LedgerSpec) -> None:
    ledger = store.open()
    work = []
    for i in range(7):
        work += job(f"k{i}", "submitted", line=i + 1, video_id=f"v{i}")
    work += job("u", "uncertain")
    work.append(render_writes.render_update("k2", "completed", "url", None, None))
    work.append(render_writes.render_update("k3", "failed", None, None, "render failed"))
    work.append(render_writes.render_update("k4", "processing", None, None, None))
    ledger.transaction(work)
    pages, after = [], ""
    while page := ledger.renders_to_check(after, 2):
        pages.append(page)
        after = page[-1][0]
    assert [[(key, video) for key, video, *_ in page] for page in pages] == [
        [("k0", "v0"), ("k1", "v1")],
        [("k4", "v4"), ("k5", "v5")],
        [("k6", "v6")],
    ]
    assert pages[0][0][2] == "k0"
    failed = ledger.get("k3")
    assert failed is not None
    assert failed.error == "render failed"
    ledger.close()


def test_a_transaction_is_all_or_nothing(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(job("a", "pending"))
    with pytest.raises(LedgerStoreError):
        ledger.transaction([*job("b", "pending"), *job("a", "pending")])
    assert ledger.get("b") is None
    assert json.loads(json.dumps(ledger.counts()))["pending"] == 1
    ledger.close()


def test_only_pending_jobs_with_a_stored_body_are_resendable(store: LedgerSpec) -> None:
    """Proven absent (body kept) goes again; held back by --limit (never sent) does not."""
    ledger = store.open()
    ledger.transaction(
        [
            *job("held", "pending"),
            *job("absent", "uncertain", line=2),
            statements.reconciled_absent("absent"),
            *job("lost", "uncertain", line=3),
        ]
    )
    assert [j.key for j in ledger.resendable()] == ["absent"]
    ledger.close()


def test_look_ups_of_more_keys_than_one_statement_binds_find_them_all(store: LedgerSpec) -> None:
    with closing(store.open()) as ledger:
        work = []
        for n in range(1, 1001):
            work += job(f"k{n:04}", "submitted", line=n, video_id=f"v{n}")
            work.append(statements.set_fingerprint(f"k{n:04}", f"fp{n}"))
        ledger.transaction(work)
        keys = [f"k{n:04}" for n in range(1, 1001)]
        found = ledger.lookup([*keys, "nobody"])
        assert len(found) == 1000
        assert found["k0999"].status == "submitted"
        assert ledger.known_video_ids([f"v{n}" for n in range(990, 1010)]) == {
            f"v{n}" for n in range(990, 1001)
        }
        fingerprints = ledger.submitted_rows([f"fp{n}" for n in range(1, 1001)])
        assert len(fingerprints) == 1000
        assert fingerprints["fp7"] == "k0007"


def test_jobs_come_in_line_then_bytewise_key_order_and_stay_after_a_reopen(
    store: LedgerSpec,
) -> None:
    with closing(store.open()) as ledger:
        ledger.transaction(
            [
                statements.insert_job("b", 2, "pending", {}, "s", None),
                statements.insert_job("Z", 1, "pending", {}, "s", None),
                statements.insert_job("a", 1, "pending", {}, "s", None),
                statements.insert_job("É", 1, "pending", {}, "s", None),
            ]
        )
        ledger.set_meta("note", "kept")
    with closing(store.open(create=False)) as again:
        assert [j.key for j in again.iter_jobs()] == ["Z", "a", "É", "b"]
        assert sorted(again.keys()) == ["Z", "a", "b", "É"]
        assert again.meta("note") == "kept"
        again.set_meta("note", "changed")
        assert again.meta("note") == "changed"
        again.set_meta("note", None)
        assert again.meta("note") is None


def test_a_ledger_of_test_videos_refuses_real_ones(store: LedgerSpec) -> None:
    with closing(store.open()) as ledger:
        ledger.require_videos("test")
        ledger.transaction([statements.set_videos("test")])
        ledger.require_videos("test")
        with pytest.raises(ConfigError, match=r"ledger of its own: --(ledger|campaign) "):
            ledger.require_videos("real")
