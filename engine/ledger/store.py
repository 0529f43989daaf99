"""The ledger: one row per job in SQLite (WAL), with every write in a short transaction."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import orjson

from engine.errors import ConfigError, one_line
from engine.ledger.migrations import migrate

Status = Literal["pending", "submitting", "submitted", "invalid", "failed", "uncertain"]
#: Test videos (``run --test-videos``: no credits spent) or real ones.
Videos = Literal["test", "real"]
STATUSES: tuple[Status, ...] = (
    "pending",
    "submitting",
    "submitted",
    "invalid",
    "failed",
    "uncertain",
)

_WAL_TRIES = 50
_WAL_RETRY_S = 0.05

# SQLite's default limit on bound parameters per statement is 999 on old builds.
_LOOKUP_CHUNK = 900


def _json_text(value: Any) -> str:
    """A row's values as JSON: orjson's spelling, at a tenth of the cost, wherever it
    can (json's where it cannot: an integer past 64 bits in a JSONL cell)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


_last_stamp: tuple[int, str] = (0, "")


def now_iso() -> str:
    """UTC now to the millisecond; formatted once per millisecond, as every statement asks."""
    global _last_stamp
    ms = time.time_ns() // 1_000_000
    if ms != _last_stamp[0]:
        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        _last_stamp = (ms, stamp)
    return _last_stamp[1]


@dataclass(frozen=True, slots=True)
class JobRecord:
    key: str
    line: int
    status: Status
    video_id: str | None
    attempts: int
    error: str | None
    request_sha256: str | None
    callback_id: str | None
    body: str | None
    attempted_at: float | None
    sent_at: float | None
    updated_at: str
    video_status: str | None
    video_url: str | None
    thumbnail_url: str | None
    source: dict[str, Any]


_COLUMNS = (
    "key, line, status, video_id, attempts, error, request_sha256, callback_id, body, "
    "attempted_at, sent_at, updated_at, video_status, video_url, thumbnail_url, source"
)


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(
        key=row[0],
        line=row[1],
        status=row[2],
        video_id=row[3],
        attempts=row[4],
        error=row[5],
        request_sha256=row[6],
        callback_id=row[7],
        body=row[8],
        attempted_at=row[9],
        sent_at=row[10],
        updated_at=row[11],
        video_status=row[12],
        video_url=row[13],
        thumbnail_url=row[14],
        source=json.loads(row[15]),
    )


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out another connection that is creating the same file.

    Changing the journal mode does not go through the busy handler, so a second
    process opening a brand-new ledger at the same moment would fail at once.
    """
    for _ in range(_WAL_TRIES - 1):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err):
                raise
            time.sleep(_WAL_RETRY_S)
    conn.execute("PRAGMA journal_mode=WAL")


def require_ledger(path: Path) -> None:
    """Fail before anything (a lock file, a connection) is created for a missing ledger."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such ledger; run `heygen-batch run` first.")


@dataclass(frozen=True, slots=True)
class Known:
    """What the ledger already holds for a key, as the planner needs it."""

    status: Status
    request_sha256: str | None
    attempts: int = 0
    #: The callback_id it was last marked with (the job key itself before campaign ids).
    callback_id: str | None = None


SUBMITTED_ROWS = (
    "SELECT row_fingerprint, key FROM jobs INDEXED BY jobs_submitted_rows "
    "WHERE row_fingerprint IN ({marks}) AND status = 'submitted'"
)


class Ledger:
    """Synchronous access to one ledger file; the async side batches calls into it."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        if not create:
            require_ledger(path)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: every transaction below is explicit and short.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=5000")
            _enable_wal(self._conn)
            # FULL: a commit survives a power cut, not only a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            migrate(self._conn)
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{path}: not a heygen-batch ledger ({err}).") from err

    @classmethod
    def read_only(cls, path: Path) -> Ledger:
        """Open for reading only: no pragma, no migration, nothing written (``--dry-run``)."""
        require_ledger(path)
        ledger = cls.__new__(cls)
        ledger.path = path
        try:
            ledger._conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            ledger._conn.execute("SELECT count(*) FROM jobs").fetchone()
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{path}: not a heygen-batch ledger ({err}).") from err
        return ledger

    def close(self) -> None:
        self._conn.close()

    @property
    def has_fingerprints(self) -> bool:
        """False for a ledger of an older schema opened read-only (never migrated)."""
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'jobs_submitted_rows'"
        ).fetchone()
        return found is not None

    # --- transactions ---------------------------------------------------------------------

    def transaction(self, work: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run many statements as one commit (one fsync for all of them)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Runs of the same statement (a batch of marks, of inserts) go to SQLite in
            # one executemany: the order of statements is kept, the per-call cost is not.
            for sql, run in itertools.groupby(work, key=itemgetter(0)):
                conn.executemany(sql, [params for _, params in run])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- metadata -------------------------------------------------------------------------

    def require_videos(self, kind: Videos) -> None:
        """Refuse a run of one kind of video on a ledger that holds the other.

        Only jobs keyed by a column need this: a test run and a real one then know a
        contact by the same key, so after a test run a real run on the same ledger
        would take every row for done and make no real video. Keys made from the
        body differ already (a test body says so). The kind is recorded with the
        first job a run sends; a ledger from before that is taken as it comes.
        """
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'videos'").fetchone()
        if row is None or row[0] == kind:
            return
        name = self.path.name.removesuffix(".ledger.db").removesuffix(".db")
        other = self.path.with_name(f"{name}.{kind}.ledger.db")
        raise ConfigError(
            f"{self.path} holds {row[0]} videos and this is a {kind} run: on that ledger "
            f"its rows would be taken for done. Give the {kind} run a ledger of its own: "
            f"--ledger {other}"
        )

    @property
    def campaign_id(self) -> str | None:
        """Made with the ledger (see the migrations); None only in an older ledger opened
        read-only, which was never migrated."""
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'campaign_id'").fetchone()
        return str(row[0]) if row else None

    def shared_videos(self) -> list[tuple[str, str]]:
        """(key, error) of the jobs left uncertain because another job holds their video."""
        rows = self._conn.execute(
            "SELECT key, error FROM jobs WHERE status = 'uncertain' AND error LIKE ?",
            (f"%, which job % {_HELD_BY}; %",),
        )
        return [(key, error) for key, error in rows]

    def source_columns(self) -> list[str]:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'source_columns'").fetchone()
        return list(json.loads(row[0])) if row else []

    # --- reads ----------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, status, sha, attempts, callback_id in self._conn.execute(
                "SELECT key, status, request_sha256, attempts, callback_id FROM jobs "
                f"WHERE key IN ({marks})",
                chunk,
            ):
                found[key] = Known(status, sha, attempts, callback_id)
        return found

    def submitted_rows(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """The key of each row seen before whose job was submitted, by row fingerprint.

        Answered from the partial index alone: named, because without statistics SQLite
        prefers the status index and would walk every submitted job for each chunk.
        Failed and uncertain jobs are not in it, so their rows are rendered again and an
        edited row is reported as changed.
        """
        found: dict[str, str] = {}
        for start in range(0, len(fingerprints), _LOOKUP_CHUNK):
            chunk = fingerprints[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for fingerprint, key in self._conn.execute(SUBMITTED_ROWS.format(marks=marks), chunk):
                found[fingerprint] = key
        return found

    def get(self, key: str) -> JobRecord | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (key,)).fetchone()
        return _record(row) if row else None

    def with_status(self, *statuses: Status) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY line", statuses
        )
        return [_record(r) for r in rows]

    def resendable(self) -> list[JobRecord]:
        """Pending jobs that carry the body they were first sent with (proven absent since).

        Filtered here, not in Python: jobs held back by --limit are pending too, and a
        cron ledger may hold a million of them.
        """
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'pending' AND body IS NOT NULL "
            "ORDER BY line"
        )
        return [_record(r) for r in rows]

    def iter_jobs(self) -> Iterator[JobRecord]:
        for row in self._conn.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY line, key"):
            yield _record(row)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for status, n in self._conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
            counts[status] = n
        return counts

    def known_video_ids(self, video_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(video_ids), _LOOKUP_CHUNK):
            chunk = video_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT video_id FROM jobs WHERE video_id IN ({marks})", chunk
                )
            )
        return found

    def renders_to_check(self, after: str, limit: int) -> list[tuple[str, str]]:
        """(key, video_id) of submitted jobs whose render is not final, in key order after
        ``after``: a page at a time, so polling a million jobs never holds them all."""
        rows = self._conn.execute(
            "SELECT key, video_id FROM jobs WHERE key > ? AND status = 'submitted' "
            "AND video_id IS NOT NULL "
            "AND (video_status IS NULL OR video_status NOT IN ('completed', 'failed')) "
            "ORDER BY key LIMIT ?",
            (after, limit),
        )
        return [(key, video_id) for key, video_id in rows]


# --- statements the async writer batches ----------------------------------------------------

Statement = tuple[str, Sequence[Any]]


def set_videos(kind: Videos) -> Statement:
    """Whether this ledger's jobs are test videos or real ones (see ``require_videos``)."""
    return ("INSERT OR REPLACE INTO meta (name, value) VALUES ('videos', ?)", (kind,))


def set_source_columns(columns: Sequence[str]) -> Statement:
    """The source columns in first-seen order: the export's leading columns."""
    return (
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('source_columns', ?)",
        (json.dumps(list(columns), ensure_ascii=False),),
    )


def _error_text(error: str | None) -> str | None:
    """Every error the ledger keeps is one short line (an export cell, a log line)."""
    return None if error is None else one_line(error)


def insert_job(
    key: str,
    line: int,
    status: Status,
    source: dict[str, Any],
    sha256: str | None,
    error: str | None,
    fingerprint: str | None = None,
) -> Statement:
    return (
        "INSERT INTO jobs (key, line, status, request_sha256, error, updated_at, source, "
        "row_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            line,
            status,
            sha256,
            _error_text(error),
            now_iso(),
            _json_text(source),
            fingerprint,
        ),
    )


def refresh_pending(
    key: str,
    line: int,
    sha256: str,
    source: dict[str, Any],
    fingerprint: str | None,
    body: str,
    callback_id: str | None,
) -> Statement:
    """A pending job read again: the file's current body and values win, nothing was sent.

    A job that keeps a body to be resent (proven absent, or marked and never sent)
    takes the new one, and its callback_id: should the row then be held back and
    missing from the next file, the body resent is the one the ledger shows.
    """
    return (
        "UPDATE jobs SET line = ?, request_sha256 = ?, source = ?, row_fingerprint = ?, "
        "body = iif(body IS NULL, NULL, ?), callback_id = iif(body IS NULL, callback_id, ?), "
        "updated_at = ? WHERE key = ? AND status = 'pending'",
        (line, sha256, _json_text(source), fingerprint, body, callback_id, now_iso(), key),
    )


def set_fingerprint(key: str, fingerprint: str) -> Statement:
    """Remember an unchanged row's fingerprint, so the next run skips it without rendering."""
    return ("UPDATE jobs SET row_fingerprint = ? WHERE key = ?", (fingerprint, key))


def insert_submitting(
    key: str,
    line: int,
    source: dict[str, Any],
    fingerprint: str | None,
    body: str,
    sha256: str,
    callback_id: str | None,
    attempted_at: float,
) -> Statement:
    """A job seen for the first time, recorded and marked in one statement.

    What ``insert_job`` then ``mark_submitting`` would leave, for a third less work.
    """
    return (
        "INSERT INTO jobs (key, line, status, request_sha256, updated_at, source, "
        "row_fingerprint, body, callback_id, attempted_at) "
        "VALUES (?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            line,
            sha256,
            now_iso(),
            _json_text(source),
            fingerprint,
            body,
            callback_id,
            attempted_at,
        ),
    )


def mark_submitting(
    key: str, body: str, sha256: str, callback_id: str | None, attempted_at: float
) -> Statement:
    return (
        "UPDATE jobs SET status = 'submitting', body = ?, request_sha256 = ?, callback_id = ?, "
        "attempted_at = ?, error = NULL, updated_at = ? WHERE key = ?",
        (body, sha256, callback_id, attempted_at, now_iso(), key),
    )


#: In the error of a job whose video another job holds (see ``_record_video``).
_HELD_BY = "already holds"


def _record_video(source: str, then: str, flagged_sent_at: str) -> str:
    """Set ``?1`` as job ``?2``'s video, unless another job holds it already.

    The service's video_ids are unique, so an answer (or a listing) giving a job the
    video of another job of the ledger is wrong about one of them: the job is then
    not recorded with it but left uncertain, its body kept, for reconcile to settle
    by its callback_id; the error names the video and the job holding it. One probe
    of the video_id index, inside the statement, so a batch of answers checks itself.
    """
    error = f"'{source} video_id ' || ?1 || ', which job ' || holder || ' {_HELD_BY}; {then}'"
    return (
        "(status, video_id, error, body, sent_at) = (SELECT "
        "iif(holder IS NULL, 'submitted', 'uncertain'), iif(holder IS NULL, ?1, NULL), "
        f"iif(holder IS NULL, NULL, {error}), iif(holder IS NULL, NULL, jobs.body), "
        f"iif(holder IS NULL, jobs.sent_at, {flagged_sent_at}) "
        "FROM (SELECT (SELECT o.key FROM jobs AS o WHERE o.video_id = ?1 AND o.key <> ?2 "
        "LIMIT 1) AS holder))"
    )


_MARK_SUBMITTED = (
    "UPDATE jobs SET "
    + _record_video("the service answered with", "to be reconciled", "?4")
    + ", attempts = ?3, updated_at = ?5 WHERE key = ?2"
)
_RECONCILED_FOUND = (
    "UPDATE jobs SET "
    + _record_video("reconcile found", "still uncertain", "jobs.sent_at")
    + ", updated_at = ?3 WHERE key = ?2 AND status IN ('uncertain', 'submitting')"
)


def mark_submitted(key: str, video_id: str, attempts: int) -> Statement:
    """The service's answer; flagged, the job's grace counts from the answer."""
    return (_MARK_SUBMITTED, (video_id, key, attempts, time.time(), now_iso()))


def mark_outcome(
    key: str, status: Status, attempts: int, error: str | None, sent_at: float | None = None
) -> Statement:
    """failed, uncertain or back to pending; the stored body stays for an uncertain resend.

    ``sent_at``: the last moment the request may have reached the service (uncertain).
    """
    keep_body = status in ("uncertain", "pending")
    return (
        "UPDATE jobs SET status = ?, attempts = ?, error = ?, updated_at = ?, "
        "sent_at = coalesce(?, sent_at)"
        + ("" if keep_body else ", body = NULL")
        + " WHERE key = ?",
        (status, attempts, _error_text(error), now_iso(), sent_at, key),
    )


def reconciled_found(key: str, video_id: str) -> Statement:
    return (_RECONCILED_FOUND, (video_id, key, now_iso()))


def reconciled_absent(key: str) -> Statement:
    return (
        "UPDATE jobs SET status = 'pending', error = NULL, updated_at = ? "
        "WHERE key = ? AND status = 'uncertain'",
        (now_iso(), key),
    )


def in_flight_to_uncertain(now: float) -> Statement:
    """After a crash, every job caught in flight may or may not exist at the service.

    When its request left is unknown, only that it was before ``now``: the grace
    before it may be declared absent counts from there.
    """
    return (
        "UPDATE jobs SET status = 'uncertain', sent_at = ?, "
        "error = 'interrupted while in flight; to be reconciled', updated_at = ? "
        "WHERE status = 'submitting'",
        (now, now_iso()),
    )


def clear_invalid() -> Statement:
    """Invalid rows are re-judged on every run, so a fixed row is not stuck as invalid."""
    return ("DELETE FROM jobs WHERE status = 'invalid'", ())


def render_update(
    key: str, video_status: str, video_url: str | None, thumbnail_url: str | None, error: str | None
) -> Statement:
    return (
        "UPDATE jobs SET video_status = ?, video_url = ?, thumbnail_url = ?, "
        "error = coalesce(?, error), updated_at = ? WHERE key = ?",
        (video_status, video_url, thumbnail_url, _error_text(error), now_iso(), key),
    )
