"""The ledger: one row per job, in SQLite (a file) or PostgreSQL (a campaign's schema),
with every write in a short transaction. Its SQL is the subset both accept; each
store's differences are behind its ``Database`` adapter (``engine/ledger/database.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from engine.errors import ConfigError
from engine.ledger.database import Database, StoreFeatures
from engine.ledger.render_reads import RenderReads
from engine.ledger.sqlite_db import SqliteDatabase

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

# SQLite's default limit on bound parameters per statement is 999 on old builds.
_LOOKUP_CHUNK = 900
_SUBMITTED_INDEX = "jobs_submitted_rows"


#: In the error of a job whose video another job holds (see ``_record_video``).
HELD_BY = "already holds"


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
    #: The service clock's lead over ours when the job was marked; None if unknown then.
    service_offset: float | None = None
    #: The HeyGen API the job goes to ("v2" or "v3").
    api: str = "v2"
    #: When the job was first marked to be sent (its latest: ``attempted_at``).
    first_attempted_at: float | None = None
    video_page_url: str | None = None
    #: Where ``download`` saved the video, and its length in bytes.
    file_path: str | None = None
    file_bytes: int | None = None


_COLUMNS = (
    "key, line, status, video_id, attempts, error, request_sha256, callback_id, body, "
    "attempted_at, sent_at, updated_at, video_status, video_url, thumbnail_url, source, "
    "service_offset, api, first_attempted_at, video_page_url, file_path, file_bytes"
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
        service_offset=row[16],
        api=row[17],
        first_attempted_at=row[18],
        video_page_url=row[19],
        file_path=row[20],
        file_bytes=row[21],
    )


@dataclass(frozen=True, slots=True)
class Known:
    """What the ledger already holds for a key, as the planner needs it."""

    status: Status
    request_sha256: str | None
    attempts: int = 0
    #: The callback_id it was last marked with (the job key itself before campaign ids).
    callback_id: str | None = None


#: Set one meta row, replacing its value.
SET_META = (
    "INSERT INTO meta (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


def submitted_rows_sql(features: StoreFeatures, marks: str) -> str:
    """The look-up of ``submitted_rows``; on SQLite it names its index (see there)."""
    hint = f" INDEXED BY {_SUBMITTED_INDEX}" if features.index_hints else ""
    return (
        f"SELECT row_fingerprint, key FROM jobs{hint} "
        f"WHERE row_fingerprint IN ({marks}) AND status = 'submitted'"
    )


class Ledger(RenderReads):
    """Synchronous access to one ledger; the async side batches calls into it.

    ``store``: a ledger file's path (SQLite; made when missing unless ``create`` is
    False, then ConfigError), or an open ``Database`` (``engine/ledger/open.py``).
    """

    def __init__(self, store: Path | Database, *, create: bool = True) -> None:
        self._db: Database = (
            SqliteDatabase.open(store, create=create) if isinstance(store, Path) else store
        )

    @classmethod
    def read_only(cls, path: Path) -> Ledger:
        """Open a ledger file for reading only: no pragma, no migration, nothing written."""
        return cls(SqliteDatabase.open_read_only(path))

    @property
    def features(self) -> StoreFeatures:
        return self._db.features

    @property
    def file(self) -> Path | None:
        """The ledger's file (its lock and sandbox state sit beside it); None on a server."""
        return self._db.file

    @property
    def campaign(self) -> str | None:
        """The campaign's name in a database of many (PostgreSQL); None for a file."""
        return self._db.campaign

    def describe(self) -> str:
        """The ledger for messages: its path, or its database (no password) and campaign."""
        return self._db.describe()

    def reopen(self) -> Ledger:
        """The same ledger on a connection of its own (the writer's)."""
        return Ledger(self._db.reopen())

    def close(self) -> None:
        self._db.close()

    @property
    def has_fingerprints(self) -> bool:
        """False for a ledger of an older schema opened read-only (never migrated)."""
        return self._db.has_index(_SUBMITTED_INDEX)

    # --- transactions ---------------------------------------------------------------------

    def transaction(self, work: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run many statements as one commit (one fsync for all of them), in order; on an
        error none of them is kept (LedgerStoreError; Fenced when a worker lost its lease)."""
        self._db.transaction(work)

    # --- metadata -------------------------------------------------------------------------

    def require_videos(self, kind: Videos) -> None:
        """Refuse a run of one kind of video on a ledger that holds the other.

        Only jobs keyed by a column need this: a test run and a real one then know a
        contact by the same key, so after a test run a real run on the same ledger
        would take every row for done and make no real video. Keys made from the
        body differ already (a test body says so). The kind is that of the bodies
        sent (``videos_of``), recorded with the first job a run sends; a ledger from
        before that is taken as it comes.
        """
        row = self._one("SELECT value FROM meta WHERE name = 'videos'")
        if row is None or row[0] == kind:
            return
        raise mixed_videos(self, row[0], kind)

    @property
    def campaign_id(self) -> str | None:
        """Made with the ledger (see the migrations); None only in an older ledger opened
        read-only, which was never migrated."""
        row = self._one("SELECT value FROM meta WHERE name = 'campaign_id'")
        return str(row[0]) if row else None

    def shared_videos(self) -> list[tuple[str, str]]:
        """(key, error) of the jobs left uncertain because another job holds their video."""
        rows = self._db.execute(
            "SELECT key, error FROM jobs WHERE status = 'uncertain' AND error LIKE ?",
            (f"%, which job % {HELD_BY}; %",),
        )
        return [(key, error) for key, error in rows]

    def meta(self, name: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE name = ?", (name,))
        return str(row[0]) if row else None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only summary query (``engine/ledger/summary.py``)."""
        return self._db.execute(sql, params)

    def set_meta(self, name: str, value: str | None) -> None:
        """Record (or, with None, forget) one fact about the ledger, committed at once."""
        if value is None:
            self.transaction([("DELETE FROM meta WHERE name = ?", (name,))])
        else:
            self.transaction([(SET_META, (name, value))])

    def invalid_fingerprints(self) -> set[str]:
        """Fingerprints of the rows an earlier run recorded ``invalid`` (see the feeder)."""
        rows = self._db.execute(
            "SELECT row_fingerprint FROM jobs WHERE status = 'invalid' "
            "AND row_fingerprint IS NOT NULL"
        )
        return {row[0] for row in rows}

    def source_columns(self) -> list[str]:
        row = self._one("SELECT value FROM meta WHERE name = 'source_columns'")
        return list(json.loads(row[0])) if row else []

    # --- reads ----------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, status, sha, attempts, callback_id in self._db.execute(
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
            for fingerprint, key in self._db.execute(
                submitted_rows_sql(self.features, marks), chunk
            ):
                found[fingerprint] = key
        return found

    def get(self, key: str) -> JobRecord | None:
        row = self._one(f"SELECT {_COLUMNS} FROM jobs WHERE key = ?", (key,))
        return _record(row) if row else None

    def sent_with_callback_id(self, callback_id: str) -> JobRecord | None:
        """The job of this ledger last sent with ``callback_id``, or None.

        Only the engine's callback_ids (``<campaign>:…``, ``<campaign>.<hash>``) are
        looked for, so another campaign's video never costs a look-up. One made from a
        plain key names it, found by the primary key; any other (a hashed key, a
        template's own callback_id) scans the table, which reconcile asks only for a
        video of this campaign that the ledger does not know and no uncertain job
        claims: rare. No index on callback_id, which every mark would have to update.
        """
        campaign = self.campaign_id
        if campaign is None or not callback_id.startswith(campaign):
            return None
        rest = callback_id[len(campaign) :]
        select = f"SELECT {_COLUMNS} FROM jobs WHERE callback_id = ?"
        if rest.startswith(":"):
            row = self._one(select + " AND key = ?", (callback_id, rest[1:]))
            if row is not None:
                return _record(row)
        elif not rest.startswith("."):
            return None
        found = self._db.execute(select + " LIMIT 2", (callback_id,))
        # Two jobs sent with one callback_id name neither.
        return _record(found[0]) if len(found) == 1 else None

    def completed_after(self, after: str, limit: int) -> list[JobRecord]:
        """Submitted jobs whose render is completed, in key order after ``after``: a page
        at a time, so downloading a million videos never holds them all."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE key > ? AND status = 'submitted' "
            "AND video_id IS NOT NULL AND video_status = 'completed' ORDER BY key LIMIT ?",
            (after, limit),
        )
        return [_record(r) for r in rows]

    def with_video_id(self, video_id: str) -> JobRecord | None:
        """The submitted job holding ``video_id``, or None (another ledger's video)."""
        row = self._one(
            f"SELECT {_COLUMNS} FROM jobs WHERE video_id = ? AND status = 'submitted' LIMIT 1",
            (video_id,),
        )
        return _record(row) if row else None

    def with_status(self, *statuses: Status) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY line, key",
            statuses,
        )
        return [_record(r) for r in rows]

    def resendable(self) -> list[JobRecord]:
        """Pending jobs that carry the body they were first sent with (proven absent since).

        Filtered here, not in Python: jobs held back by --limit are pending too, and a
        cron ledger may hold a million of them.
        """
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'pending' AND body IS NOT NULL "
            "ORDER BY line, key"
        )
        return [_record(r) for r in rows]

    def iter_jobs(self) -> Iterator[JobRecord]:
        for row in self._db.stream(f"SELECT {_COLUMNS} FROM jobs ORDER BY line, key"):
            yield _record(row)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for status, n in self._db.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
            counts[status] = n
        return counts


class Named(Protocol):
    """A ledger as messages name it, open (``Ledger``) or not (``LedgerSpec``)."""

    @property
    def file(self) -> Path | None: ...

    @property
    def campaign(self) -> str | None: ...

    def describe(self) -> str: ...


def mixed_videos(where: Named, held: str, kind: Videos) -> ConfigError:
    """The refusal of ``kind`` videos on the ledger ``where``, which holds ``held`` ones;
    the fix names a ledger file (or a database's campaign) of its own."""
    if where.file is not None:
        name = where.file.name.removesuffix(".ledger.db").removesuffix(".db")
        own = f"--ledger {where.file.with_name(f'{name}.{kind}.ledger.db')}"
    else:
        own = f"--campaign {where.campaign}_{kind}"
    return ConfigError(
        f"{where.describe()} holds {held} videos and this run sends {kind} ones (--test-videos, "
        f'or "test" in the template): on that ledger its rows would be taken for done. Give '
        f"the {kind} run a ledger of its own: {own}"
    )
