"""The shared tables of the workers' coordination, in schema ``heygen_batch``, versioned.

``workers`` (one row per live worker, its lease and fence), ``limits`` (one row per
account: the lock that serialises its grants, and its pause), ``grants`` (the sliding log
of starts per account), ``rendering`` (one row per job holding a render slot), ``roles``
(an account's one reconciler and one render poller, each bound to its holder's lease),
``rates`` (the rates an account's callers asked for lately). Every time
in them is the database's clock. Migrations run under the transaction-scoped advisory
lock the campaign registry's migrations take too, so concurrent first opens are safe.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

#: Every migration of the shared schema takes this lock first (``hashtext`` of its name).
MIGRATION_LOCK = "heygen_batch.migrate"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "workers, limits, grants, rendering",
        # A worker's fence is new at each register: the id and fence a writer checks name
        # one registration, never a later one of the same process.
        # start_allowed is one call, so an account's lock is held for one round trip; its
        # statements each take a new snapshot (a volatile function under READ COMMITTED),
        # so each caller sees every grant committed before it took the lock.
        """
        CREATE SEQUENCE heygen_batch.worker_fence;
        CREATE TABLE heygen_batch.workers (
            id TEXT PRIMARY KEY,
            fence BIGINT NOT NULL,
            host TEXT NOT NULL,
            pid BIGINT NOT NULL,
            campaigns TEXT[] NOT NULL,
            lease_s DOUBLE PRECISION NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            heartbeat_at TIMESTAMPTZ NOT NULL,
            lease_until TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX workers_lease_until ON heygen_batch.workers (lease_until);
        CREATE TABLE heygen_batch.limits (
            account TEXT PRIMARY KEY,
            paused_until TIMESTAMPTZ
        );
        CREATE TABLE heygen_batch.grants (
            account TEXT NOT NULL,
            granted_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX grants_account_time ON heygen_batch.grants (account, granted_at);
        CREATE TABLE heygen_batch.rendering (
            account TEXT NOT NULL,
            campaign TEXT NOT NULL,
            key TEXT NOT NULL,
            video_id TEXT,
            started_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (account, campaign, key)
        );

        CREATE FUNCTION heygen_batch.start_allowed(
            p_account TEXT, p_n INTEGER, p_period DOUBLE PRECISION, p_keep DOUBLE PRECISION,
            p_max_rendering INTEGER, p_campaign TEXT, p_key TEXT,
            p_slot_wait DOUBLE PRECISION)
        RETURNS DOUBLE PRECISION LANGUAGE plpgsql AS $$
        DECLARE
            v_paused TIMESTAMPTZ;
            v_now TIMESTAMPTZ;
            v_nth TIMESTAMPTZ;
            v_busy BIGINT;
            v_wait DOUBLE PRECISION := 0;
        BEGIN
            INSERT INTO heygen_batch.limits (account) VALUES (p_account)
                ON CONFLICT DO NOTHING;
            SELECT paused_until INTO v_paused FROM heygen_batch.limits
                WHERE account = p_account FOR UPDATE;
            -- Read after the lock is ours: grants are stamped in the order they are made.
            v_now := clock_timestamp();
            IF v_paused > v_now THEN
                v_wait := extract(epoch FROM v_paused - v_now);
            END IF;
            -- The n-th latest grant: a new one is allowed once it is a period old.
            SELECT granted_at INTO v_nth FROM heygen_batch.grants
                WHERE account = p_account
                ORDER BY granted_at DESC OFFSET p_n - 1 LIMIT 1;
            IF v_nth IS NOT NULL AND v_nth + make_interval(secs => p_period) > v_now THEN
                v_wait := greatest(v_wait,
                    extract(epoch FROM v_nth + make_interval(secs => p_period) - v_now));
            END IF;
            IF p_max_rendering IS NOT NULL THEN
                -- A job holding a slot already (sent again) needs no second one.
                SELECT count(*) INTO v_busy FROM heygen_batch.rendering
                    WHERE account = p_account
                      AND (campaign, key) IS DISTINCT FROM (p_campaign, p_key);
                IF v_busy >= p_max_rendering THEN
                    v_wait := greatest(v_wait, p_slot_wait);
                END IF;
            END IF;
            IF v_wait > 0 THEN
                RETURN v_wait;
            END IF;
            INSERT INTO heygen_batch.grants (account, granted_at) VALUES (p_account, v_now);
            IF p_key IS NOT NULL THEN
                INSERT INTO heygen_batch.rendering (account, campaign, key, started_at)
                    VALUES (p_account, p_campaign, p_key, v_now)
                    ON CONFLICT (account, campaign, key)
                    DO UPDATE SET video_id = NULL, started_at = v_now;
            END IF;
            DELETE FROM heygen_batch.grants
                WHERE account = p_account
                  AND granted_at < v_now - make_interval(secs => greatest(p_period, p_keep));
            RETURN 0;
        END $$;
        """,
    ),
    (
        "roles bound to leases, every caller's rate held for all",
        # A role is held while its holder's lease is in force, not while a connection
        # lives: a stopped worker (SIGSTOP, a hung host whose TCP stays up) loses it with
        # its lease. Each caller's rate is recorded as it asks and held until it has not
        # asked for p_held of its periods past the last wait it was given; a grant needs
        # room under every rate held, so the strictest binds every worker of the account.
        """
        CREATE TABLE heygen_batch.roles (
            account TEXT NOT NULL,
            role TEXT NOT NULL,
            worker_id TEXT NOT NULL,
            taken_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (account, role)
        );
        CREATE TABLE heygen_batch.rates (
            account TEXT NOT NULL,
            n INTEGER NOT NULL,
            period DOUBLE PRECISION NOT NULL,
            held_until TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (account, n, period)
        );
        DROP FUNCTION heygen_batch.start_allowed(
            TEXT, INTEGER, DOUBLE PRECISION, DOUBLE PRECISION, INTEGER, TEXT, TEXT,
            DOUBLE PRECISION);

        CREATE FUNCTION heygen_batch.start_allowed(
            p_account TEXT, p_n INTEGER, p_period DOUBLE PRECISION, p_keep DOUBLE PRECISION,
            p_max_rendering INTEGER, p_campaign TEXT, p_key TEXT,
            p_slot_wait DOUBLE PRECISION, p_held DOUBLE PRECISION)
        RETURNS DOUBLE PRECISION LANGUAGE plpgsql AS $$
        DECLARE
            v_paused TIMESTAMPTZ;
            v_now TIMESTAMPTZ;
            v_nth TIMESTAMPTZ;
            v_busy BIGINT;
            v_rate RECORD;
            v_longest DOUBLE PRECISION;
            v_wait DOUBLE PRECISION := 0;
        BEGIN
            INSERT INTO heygen_batch.limits (account) VALUES (p_account)
                ON CONFLICT DO NOTHING;
            SELECT paused_until INTO v_paused FROM heygen_batch.limits
                WHERE account = p_account FOR UPDATE;
            -- Read after the lock is ours: grants are stamped in the order they are made.
            v_now := clock_timestamp();
            DELETE FROM heygen_batch.rates
                WHERE account = p_account AND held_until < v_now;
            INSERT INTO heygen_batch.rates AS r (account, n, period, held_until)
                VALUES (p_account, p_n, p_period,
                        v_now + make_interval(secs => p_period * p_held))
                ON CONFLICT (account, n, period)
                DO UPDATE SET held_until = greatest(r.held_until, excluded.held_until);
            IF v_paused > v_now THEN
                v_wait := extract(epoch FROM v_paused - v_now);
            END IF;
            -- For each rate held, the n-th latest grant: a new one is allowed once it is
            -- that rate's period old.
            FOR v_rate IN SELECT n, period FROM heygen_batch.rates
                    WHERE account = p_account LOOP
                SELECT granted_at INTO v_nth FROM heygen_batch.grants
                    WHERE account = p_account
                    ORDER BY granted_at DESC OFFSET v_rate.n - 1 LIMIT 1;
                IF v_nth IS NOT NULL
                        AND v_nth + make_interval(secs => v_rate.period) > v_now THEN
                    v_wait := greatest(v_wait, extract(epoch FROM
                        v_nth + make_interval(secs => v_rate.period) - v_now));
                END IF;
            END LOOP;
            IF p_max_rendering IS NOT NULL THEN
                -- A job holding a slot already (sent again) needs no second one.
                SELECT count(*) INTO v_busy FROM heygen_batch.rendering
                    WHERE account = p_account
                      AND (campaign, key) IS DISTINCT FROM (p_campaign, p_key);
                IF v_busy >= p_max_rendering THEN
                    v_wait := greatest(v_wait, p_slot_wait);
                END IF;
            END IF;
            IF v_wait > 0 THEN
                -- A caller told to wait (a long pause) keeps its rate until it asks again.
                UPDATE heygen_batch.rates
                    SET held_until = greatest(held_until,
                        v_now + make_interval(secs => v_wait + p_period * p_held))
                    WHERE account = p_account AND n = p_n AND period = p_period;
                RETURN v_wait;
            END IF;
            INSERT INTO heygen_batch.grants (account, granted_at) VALUES (p_account, v_now);
            IF p_key IS NOT NULL THEN
                INSERT INTO heygen_batch.rendering (account, campaign, key, started_at)
                    VALUES (p_account, p_campaign, p_key, v_now)
                    ON CONFLICT (account, campaign, key)
                    DO UPDATE SET video_id = NULL, started_at = v_now;
            END IF;
            SELECT max(period) INTO v_longest FROM heygen_batch.rates
                WHERE account = p_account;
            DELETE FROM heygen_batch.grants
                WHERE account = p_account
                  AND granted_at < v_now - make_interval(secs => greatest(v_longest, p_keep));
            RETURN 0;
        END $$;
        """,
    ),
]


async def migrate(conn: AsyncConnection[tuple[Any, ...]]) -> None:
    """Create or bring up to date the shared schema; ``conn`` is in autocommit mode.

    Raises psycopg's errors as they come (the caller maps an unreachable database)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATION_LOCK,))
        await conn.execute("CREATE SCHEMA IF NOT EXISTS heygen_batch")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS heygen_batch.fleet_migrations (version INTEGER "
            "PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cur = await conn.execute(
            "SELECT coalesce(max(version), 0) FROM heygen_batch.fleet_migrations"
        )
        row = await cur.fetchone()
        done = int(row[0]) if row else 0
        for version, (name, script) in enumerate(MIGRATIONS, start=1):
            if version <= done:
                continue
            await conn.execute(script)
            await conn.execute(
                "INSERT INTO heygen_batch.fleet_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
