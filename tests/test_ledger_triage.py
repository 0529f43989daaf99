"""The triage that both ``run`` and ``run --dry-run`` use to sort rows against the ledger."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from engine.cli import cli
from engine.errors import FieldError, RowError
from engine.ledger import statements, store
from engine.ledger.store import Ledger
from engine.ledger.triage import Triage, Verdict
from engine.prepare import Preparer, body_sha256
from engine.reader import Row
from engine.template import compile_template

TEMPLATE = {
    "dimension": {"width": 1280, "height": 720},
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "a1"},
            "voice": {"type": "text", "voice_id": "v1", "input_text": "Hi {{ name }}"},
        }
    ],
}
SALT = b"salt"


def preparer() -> Preparer:
    return Preparer(compile_template(TEMPLATE), "id")


def row(line: int, ident: str, name: str) -> Row:
    return Row(line, {"id": ident, "name": name})


def settle(ledger: Ledger, rows: list[Row], status: store.Status = "submitted") -> None:
    """Record rows the way a run does, then settle them."""
    writes = []
    for t in Triage(ledger, preparer(), SALT).sort(rows):
        assert t.job is not None
        writes.append(
            statements.insert_job(
                t.key, t.line, "pending", t.job.source, t.job.sha256, None, t.fingerprint
            )
        )
        writes.append(statements.mark_outcome(t.key, status, 1, None))
    ledger.transaction(writes)


def test_new_rows_are_rendered_and_new(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        verdicts = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Ava"), row(3, "b", "Bo")])
    assert [t.verdict for t in verdicts] == [Verdict.NEW, Verdict.NEW]
    assert all(t.job is not None and t.job.valid for t in verdicts)


def test_a_ragged_row_is_invalid_under_its_own_key_and_has_no_fingerprint(
    tmp_path: Path,
) -> None:
    ragged = Row(4, {"id": "a"}, RowError([FieldError("", "the row has 1 cells")]))
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        verdicts = Triage(ledger, preparer(), SALT).sort([ragged, row(5, "b", "Bo")])
    assert [(t.verdict, t.key, t.fingerprint) for t in verdicts[:1]] == [
        (Verdict.INVALID, "a", None)
    ]
    # It meets its key's submitted job, over which a run records nothing.
    assert verdicts[0].previous is not None
    assert verdicts[0].previous.status == "submitted"
    assert verdicts[1].verdict is Verdict.NEW


def test_submitted_unchanged_rows_are_recognised_without_rendering(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        settle(ledger, [row(3, "b", "Bo")], status="failed")
        verdicts = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Ava"), row(3, "b", "Bo")])
    assert [t.verdict for t in verdicts] == [Verdict.ALREADY_DONE, Verdict.NOT_RESENT]
    assert verdicts[0].job is None
    # Failed jobs are few and not in the fingerprint index: rendered, so an edit shows.
    assert verdicts[1].job is not None
    assert not verdicts[1].changed


def test_a_ledger_of_schema_2_is_migrated_and_its_submitted_rows_still_recognised(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    with closing(Ledger(path)) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        settle(ledger, [row(3, "b", "Bo")], status="pending")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX jobs_submitted_rows")
        conn.execute("CREATE INDEX jobs_row_fingerprint ON jobs (row_fingerprint, status, key)")
        conn.execute("DELETE FROM migrations WHERE version = 3")
        conn.commit()
    with closing(Ledger(path)) as ledger:
        verdicts = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Ava"), row(3, "b", "Bo")])
    assert [(t.verdict, t.job is None) for t in verdicts] == [
        (Verdict.ALREADY_DONE, True),
        (Verdict.NEW, False),
    ]


def test_recognising_rows_reads_only_the_fingerprint_index(tmp_path: Path) -> None:
    """With many submitted jobs SQLite would rather walk the status index: a resume of a
    million rows would read every submitted job once per chunk."""
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(n, f"k{n}", "Ava") for n in range(2, 300)])
        plan = ledger.query(
            "EXPLAIN QUERY PLAN " + store.submitted_rows_sql(ledger.features, "?,?"), ("x", "y")
        )
    assert [step[-1] for step in plan] == [
        "SEARCH jobs USING COVERING INDEX jobs_submitted_rows (row_fingerprint=?)"
    ]


def test_an_edited_row_under_the_same_key_is_rendered_and_reported_changed(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        [t] = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Eva")])
    assert t.verdict is Verdict.ALREADY_DONE
    assert t.changed
    assert t.job is not None


def test_another_template_or_option_means_no_row_is_recognised(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        [t] = Triage(ledger, preparer(), b"other salt").sort([row(2, "a", "Ava")])
    assert t.verdict is Verdict.ALREADY_DONE
    assert not t.changed
    assert t.job is not None  # rendered, then matched by key and body


def test_a_repeat_of_a_recognised_row_is_a_duplicate(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
        verdicts = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Ava"), row(3, "a", "Ava")])
    assert [t.verdict for t in verdicts] == [Verdict.ALREADY_DONE, Verdict.DUPLICATE]


def test_pending_and_invalid_jobs_in_the_ledger_count_as_new(tmp_path: Path) -> None:
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        settle(ledger, [row(2, "a", "Ava")], status="pending")
        ledger.transaction([statements.insert_job("b", 3, "invalid", {}, None, "bad")])
        verdicts = Triage(ledger, preparer(), SALT).sort([row(2, "a", "Ava"), row(3, "b", "Bo")])
    assert [t.verdict for t in verdicts] == [Verdict.NEW, Verdict.NEW]
    assert verdicts[0].previous is not None


def test_a_dry_run_writes_nothing_to_a_ledger_of_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(Ledger(path)) as ledger:
        settle(ledger, [row(2, "a", "Ava")])
    # Roll the file back to schema 1, as a ledger made before fingerprints would be.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX jobs_submitted_rows")
        conn.execute("ALTER TABLE jobs DROP COLUMN row_fingerprint")
        conn.execute("DELETE FROM migrations WHERE version >= 2")
        conn.commit()
    before = path.read_bytes()
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,name\na,Ava\nb,Bo\n", encoding="utf-8")
    template = tmp_path / "t.json"
    template.write_text(json.dumps(TEMPLATE), encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["run", str(jobs), "--template", str(template), "--key-column", "id",
         "--ledger", str(path), "--dry-run", "--json", "--limit", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["already_done"], summary["new"], summary["held_by_limit"]) == (1, 1, 1)
    assert summary["estimate"]["videos"] == 0
    assert path.read_bytes() == before


def test_run_with_a_key_column_not_in_the_header_stops_before_the_ledger(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,name\na,Ava\n", encoding="utf-8")
    template = tmp_path / "t.json"
    template.write_text(json.dumps(TEMPLATE), encoding="utf-8")
    ledger = tmp_path / "l.db"
    result = CliRunner().invoke(
        cli,
        ["run", str(jobs), "--template", str(template), "--key-column", "ident",
         "--ledger", str(ledger), "--sandbox"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "ident" in result.output
    assert not ledger.exists()


def sent_as(ledger: Ledger, key: str, body: dict[str, object], status: store.Status) -> None:
    """A job sent with ``body`` (its callback_id as it was) and settled as ``status``."""
    text = json.dumps(body)
    callback = body.get("callback_id")
    ledger.transaction(
        [
            statements.insert_job(key, 1, "pending", {"id": key}, None, None),
            statements.mark_submitting(key, text, body_sha256(body), str(callback), 1.0),
            statements.mark_outcome(key, status, 1, "refused"),
        ]
    )


def test_a_job_sent_with_the_bare_key_as_callback_id_is_not_taken_for_changed(
    tmp_path: Path,
) -> None:
    """Sent before the ledger had a campaign id: the same row is the same request."""
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        job = Triage(None, preparer(), SALT).sort([row(1, "a", "Ava")])[0].job
        assert job is not None
        assert job.body is not None
        sent_as(ledger, "a", {**job.body, "callback_id": "a"}, "failed")
        same, edited = (
            Triage(ledger, preparer(), SALT).sort([r])[0]
            for r in (row(1, "a", "Ava"), row(1, "a", "Eve"))
        )
    assert (same.verdict, same.changed) == (Verdict.NOT_RESENT, False)
    assert (edited.verdict, edited.changed) == (Verdict.NOT_RESENT, True)


def test_a_callback_id_the_template_sets_is_part_of_the_request(tmp_path: Path) -> None:
    own = Preparer(compile_template({**TEMPLATE, "callback_id": "crm-{{ crm }}"}), "id")
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        first = Triage(ledger, own, SALT).sort([Row(1, {"id": "a", "name": "A", "crm": "1"})])
        job = first[0].job
        assert job is not None
        assert job.body is not None
        assert job.body["callback_id"] == f"{ledger.campaign_id}:crm-1"
        sent_as(ledger, "a", job.body, "failed")
        again = Triage(ledger, own, SALT).sort([Row(1, {"id": "a", "name": "A", "crm": "2"})])
    assert again[0].changed
