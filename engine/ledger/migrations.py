"""The ledger's schema, versioned: each migration runs once, recorded in ``migrations``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

MIGRATIONS: list[tuple[str, str]] = [
    (
        "create jobs",
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE jobs (
            key TEXT PRIMARY KEY,
            line INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('pending', 'submitting', 'submitted', 'invalid', 'failed', 'uncertain')),
            video_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            request_sha256 TEXT,
            callback_id TEXT,
            body TEXT,
            attempted_at REAL,
            updated_at TEXT NOT NULL,
            video_status TEXT,
            video_url TEXT,
            thumbnail_url TEXT,
            source TEXT NOT NULL
        );
        CREATE INDEX jobs_status ON jobs (status);
        CREATE INDEX jobs_video_id ON jobs (video_id);
        CREATE INDEX jobs_line ON jobs (line);
        """,
    ),
    (
        "row fingerprints and send times",
        # A digest of (template, options, row values): a re-run recognises a settled row
        # without rendering or validating it again. The index covers what that look-up
        # reads, so a million-row resume never touches the table itself.
        # sent_at is the latest moment an uncertain job's request may have left: jobs are
        # marked ahead of sending, so attempted_at alone would start the grace too early.
        """
        ALTER TABLE jobs ADD COLUMN row_fingerprint TEXT;
        CREATE INDEX jobs_row_fingerprint ON jobs (row_fingerprint, status, key);
        ALTER TABLE jobs ADD COLUMN sent_at REAL;
        """,
    ),
    (
        "index only submitted rows by fingerprint",
        # Only a submitted job lets a re-run skip its row unrendered, so only submitted
        # jobs need an entry. The old index held every job under a random fingerprint
        # with its status, so each status change rewrote a random page of it: a third of
        # a run's ledger work. Status is a column of the new index only so the look-up
        # stays covered; within it every entry says 'submitted'.
        """
        DROP INDEX jobs_row_fingerprint;
        CREATE INDEX jobs_submitted_rows ON jobs (row_fingerprint, key, status)
            WHERE status = 'submitted' AND row_fingerprint IS NOT NULL;
        """,
    ),
    (
        "campaign id",
        # Carried by every callback_id the engine makes, so two ledgers on one API key
        # never name a job alike at the service. 12 characters of [0-9a-f]: within the
        # charset of v3 idempotency keys, and 48 random bits no two campaigns share.
        # A ledger made before this gets one here, the first time it is opened to write.
        """
        INSERT OR IGNORE INTO meta (name, value)
            VALUES ('campaign_id', lower(hex(randomblob(6))));
        """,
    ),
    (
        "service clock at each attempt",
        # The lead of the service's clock over ours, as measured when the job was marked:
        # attempted_at and sent_at are local times, and a local clock stepped between the
        # attempt and the reconcile (a VM resumed, NTP) would otherwise move the search
        # window off the video. NULL where no Date header had been seen yet.
        """
        ALTER TABLE jobs ADD COLUMN service_offset REAL;
        """,
    ),
    (
        "api of each job, first attempt, v3 render fields",
        # Which HeyGen API a job goes to (every job before this went to V2). A v3 job's
        # Idempotency-Key is replayed only within 24 hours of its first request, so the
        # first attempt is kept apart from the latest. The page URL, subtitles and a
        # failed render's code and message are what v3's status answers add.
        """
        ALTER TABLE jobs ADD COLUMN api TEXT NOT NULL DEFAULT 'v2';
        ALTER TABLE jobs ADD COLUMN first_attempted_at REAL;
        ALTER TABLE jobs ADD COLUMN video_page_url TEXT;
        ALTER TABLE jobs ADD COLUMN subtitle_url TEXT;
        ALTER TABLE jobs ADD COLUMN failure_code TEXT;
        ALTER TABLE jobs ADD COLUMN failure_message TEXT;
        """,
    ),
    (
        "downloaded files",
        # Where `download` saved the job's video and its length in bytes: a re-run skips
        # a file still there at that length, and fetches again one that was cut or moved.
        """
        ALTER TABLE jobs ADD COLUMN file_path TEXT;
        ALTER TABLE jobs ADD COLUMN file_bytes INTEGER;
        """,
    ),
    (
        "jobs failed by connection errors are pending again",
        # A job is failed only by the service's own refusal. Earlier runs failed jobs
        # they could never connect for (a wrong --base-url): nothing of theirs was sent
        # (the client's ConnectFailed and RequestNotMade texts), so they go out again.
        """
        UPDATE jobs SET status = 'pending', error = NULL
            WHERE status = 'failed' AND (error LIKE '%cannot connect to %'
                OR error LIKE '%timed out connecting to %'
                OR error LIKE '%no request can be made to %');
        """,
    ),
    (
        "attempts and render facts",
        # What a campaign report shows: one row per request a job made (unix seconds;
        # outcome 'ok', 'http <status>' or the transport error's class; the service's
        # error code; the Retry-After it asked, in seconds), written in the same batches
        # as the job's own statements. No index: only the report reads it, all at once.
        # On jobs: the video seconds the run estimated before sending, the seconds the
        # service reports, and when a render was first seen to end (poll or webhook).
        """
        CREATE TABLE attempts (
            key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            latency_ms REAL NOT NULL,
            outcome TEXT NOT NULL,
            code TEXT,
            retry_after_s REAL
        );
        ALTER TABLE jobs ADD COLUMN estimated_seconds REAL;
        ALTER TABLE jobs ADD COLUMN duration_s REAL;
        ALTER TABLE jobs ADD COLUMN render_ended_at REAL;
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date; ``conn`` is in autocommit mode (isolation_level=None)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM migrations")}
    for version, (name, script) in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        # One transaction per migration, so a crash never leaves half a schema; checked
        # again inside it because another connection may have migrated the file meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = conn.execute(
                "SELECT 1 FROM migrations WHERE version = ?", (version,)
            ).fetchone()
            if applied:
                conn.execute("COMMIT")
                continue
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
