"""The PostgreSQL ledger's schemas, versioned as on SQLite: each migration runs once.

``heygen_batch`` (shared by every campaign of the database) holds the campaign registry
and, added by other parts under their own ``part`` name, the fleet's tables; each
campaign's schema, ``campaign_<name>``, holds exactly the SQLite ledger's tables (with
PostgreSQL's types: BIGINT integers, DOUBLE PRECISION reals) plus ``jobs.claimed_by``.

Each migration is one transaction under an advisory lock named for its schema, so two
processes opening a new database (or campaign) at once apply it once.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql as pgsql

from engine.ledger.database import Row
from engine.ledger.postgres.constants import SHARED_SCHEMA

#: (name, script) pairs; a script is run whole (several statements, no parameters).
Migrations = Sequence[tuple[str, str]]

SHARED_MIGRATIONS: Migrations = [
    (
        "campaign registry",
        # key_env names the environment variable a campaign's API key is read from: the
        # key itself is never stored. The trigger function is shared by every campaign's
        # jobs table (see CAMPAIGN_MIGRATIONS).
        """
        CREATE TABLE heygen_batch.campaigns (
            name TEXT PRIMARY KEY,
            schema_name TEXT UNIQUE NOT NULL,
            key_env TEXT NOT NULL DEFAULT 'HEYGEN_API_KEY',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE FUNCTION heygen_batch.release_claim() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.status = 'pending' AND OLD.status <> 'pending' THEN
                    NEW.claimed_by := NULL;
                END IF;
                RETURN NEW;
            END $$;
        """,
    ),
]

CAMPAIGN_MIGRATIONS: Migrations = [
    (
        "ledger tables",
        # The SQLite ledger's schema as its migrations leave it (engine/ledger/
        # migrations.py says why each column is there), in one step. key sorts bytewise
        # (COLLATE "C"), as SQLite's does, so paging by key and export order agree.
        # claimed_by: the worker holding a pending job; released by the trigger whenever
        # the job becomes pending again (reconciled absent, put back unsent), so it is
        # claimable again. The campaign id: 12 characters of [0-9a-f], as SQLite's.
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE jobs (
            key TEXT COLLATE "C" PRIMARY KEY,
            line BIGINT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('pending', 'submitting', 'submitted', 'invalid', 'failed', 'uncertain')),
            video_id TEXT,
            attempts BIGINT NOT NULL DEFAULT 0,
            error TEXT,
            request_sha256 TEXT,
            callback_id TEXT,
            body TEXT,
            attempted_at DOUBLE PRECISION,
            updated_at TEXT NOT NULL,
            video_status TEXT,
            video_url TEXT,
            thumbnail_url TEXT,
            source TEXT NOT NULL,
            row_fingerprint TEXT,
            sent_at DOUBLE PRECISION,
            service_offset DOUBLE PRECISION,
            api TEXT NOT NULL DEFAULT 'v2',
            first_attempted_at DOUBLE PRECISION,
            video_page_url TEXT,
            subtitle_url TEXT,
            failure_code TEXT,
            failure_message TEXT,
            file_path TEXT,
            file_bytes BIGINT,
            estimated_seconds DOUBLE PRECISION,
            duration_s DOUBLE PRECISION,
            render_ended_at DOUBLE PRECISION,
            claimed_by TEXT
        );
        CREATE INDEX jobs_status ON jobs (status);
        CREATE INDEX jobs_video_id ON jobs (video_id);
        CREATE INDEX jobs_line ON jobs (line);
        CREATE INDEX jobs_submitted_rows ON jobs (row_fingerprint, key, status)
            WHERE status = 'submitted' AND row_fingerprint IS NOT NULL;
        CREATE TRIGGER jobs_release_claim BEFORE UPDATE OF status ON jobs
            FOR EACH ROW EXECUTE FUNCTION heygen_batch.release_claim();
        CREATE TABLE attempts (
            key TEXT NOT NULL,
            attempt BIGINT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            outcome TEXT NOT NULL,
            code TEXT,
            retry_after_s DOUBLE PRECISION
        );
        INSERT INTO meta (name, value)
            VALUES ('campaign_id', substr(md5(random()::text || clock_timestamp()::text), 1, 12));
        """,
    ),
]


def migrate(
    conn: psycopg.Connection[Row], schema: str, migrations: Migrations, part: str = ""
) -> None:
    """Apply to ``schema`` the ``migrations`` not applied yet, recorded in
    ``<schema>.migrations`` under ``part`` (a name of one's own, for another module's
    migrations of the same schema). ``conn`` is in autocommit mode.

    Raises psycopg.Error as the server does."""
    ident = pgsql.Identifier(schema)
    lock = f"{schema}.migrate"
    with conn.transaction():
        # Under the lock: two first opens at once would both try to make the schema
        # (IF NOT EXISTS does not serialise them) and one would fail.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
        conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            pgsql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.migrations (part TEXT NOT NULL DEFAULT '', "
                "version BIGINT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL, "
                "PRIMARY KEY (part, version))"
            ).format(ident)
        )
    done = _applied(conn, ident, part)
    for version, (name, script) in enumerate(migrations, start=1):
        if version in done:
            continue
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            # Checked again under the lock: another process may have applied it meanwhile.
            if version in _applied(conn, ident, part):
                continue
            conn.execute(
                pgsql.SQL("SET LOCAL search_path TO {}, {}").format(
                    ident, pgsql.Identifier(SHARED_SCHEMA)
                )
            )
            conn.execute(script.encode())
            conn.execute(
                pgsql.SQL(
                    "INSERT INTO {}.migrations (part, version, name, applied_at) "
                    "VALUES (%s, %s, %s, to_char(now() AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS+00:00'))"
                ).format(ident),
                (part, version, name),
            )


def _applied(conn: psycopg.Connection[Row], ident: pgsql.Identifier, part: str) -> set[int]:
    rows = conn.execute(
        pgsql.SQL("SELECT version FROM {}.migrations WHERE part = %s").format(ident), (part,)
    )
    return {int(row[0]) for row in rows}
