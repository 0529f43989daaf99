"""Workers, their leases and their claims on a campaign's jobs, on the database's clock.

One row per worker in ``heygen_batch.workers``; a lease is in force while its
``lease_until`` is ahead of ``clock_timestamp()``, and once it is not, it is lost for good
(a heartbeat renews only a lease in force), so a worker that was stopped past its lease
can commit nothing more, whether or not it has been reaped yet.

A campaign is named here by its schema (``campaign_<name>``), whose ``jobs`` table has
the ledger's columns plus ``claimed_by``.

Each function takes an autocommit connection and runs one transaction; psycopg's errors
pass through (``Fleet`` maps them).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from engine.errors import LeaseLost
from engine.ledger.postgres.constants import LEASE_MARGIN_S, LEASE_MARGIN_SHARE
from engine.ledger.statements import now_iso

Conn = AsyncConnection[tuple[Any, ...]]

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HOST_CHARS = re.compile(r"[^a-z0-9-]+")
_HOST_MAX = 40


@dataclass
class Renewal:
    """When the lease was last renewed, by the worker's monotonic clock (seconds), read
    just before the statement that renewed it was sent: never later than the database's
    own renewal, so a lease reckoned from it never outlives the database's."""

    at: float


@dataclass(frozen=True)
class Lease:
    """One registration of a worker: its id, fence, lease length in seconds, and the
    campaign schemas it may claim from. ``renewed`` moves on at each heartbeat."""

    worker_id: str
    fence: int
    lease_s: float
    campaigns: tuple[str, ...]
    renewed: Renewal = field(compare=False)


def lease_left(lease: Lease, now_monotonic: float) -> float:
    """Seconds of ``lease`` left by the worker's monotonic clock (negative: expired)."""
    return lease.renewed.at + lease.lease_s - now_monotonic


def lease_margin(lease: Lease) -> float:
    """The least lease left, in seconds, with which a worker may start a send:
    ``LEASE_MARGIN_S``, or ``LEASE_MARGIN_SHARE`` of a lease too short for it."""
    return min(LEASE_MARGIN_S, lease.lease_s * LEASE_MARGIN_SHARE)


@dataclass(frozen=True)
class Claimed:
    """A pending job claimed by a worker: what it needs to send it."""

    key: str
    line: int
    body: str
    request_sha256: str
    attempts: int
    api: str


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker as ``status`` shows it. Times are the database's;
    ``heartbeat_age_s``: seconds since its last heartbeat; ``holding``: campaign schema ->
    jobs it has claimed that are still pending or being sent."""

    id: str
    host: str
    pid: int
    campaigns: tuple[str, ...]
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime
    heartbeat_age_s: float
    holding: dict[str, int]


def jobs_table(campaign: str) -> sql.Composed:
    """``campaign``'s jobs table; ValueError when it is no campaign schema name."""
    if not _SCHEMA.fullmatch(campaign):
        raise ValueError(f"not a campaign schema name: {campaign!r}")
    return sql.SQL("{}.jobs").format(sql.Identifier(campaign))


# A worker's write is fenced by this row lock: FOR KEY SHARE, held to the commit, makes a
# reaper or a claimer taking the worker over (FOR UPDATE) wait for the commit, and after
# theirs the row is gone or expired, so the worker can commit nothing more. KEY SHARE, not
# SHARE: a heartbeat's UPDATE never waits for the worker's own writes.
_FENCE = (
    "SELECT 1 FROM heygen_batch.workers WHERE id = {0} AND fence = {0} "
    "AND lease_until > clock_timestamp() FOR KEY SHARE"
)


def fence_sql(lease: Lease) -> tuple[str, tuple[object, ...]]:
    """The statement a worker's writer runs first in every transaction, with ``?`` marks
    (the ledger's statements' own): one row while ``lease`` is in force, none once it is
    lost, when the transaction must write nothing (the store raises Fenced)."""
    return (_FENCE.format("?"), (lease.worker_id, lease.fence))


async def hold(conn: Conn, lease: Lease) -> None:
    """Run the fence in ``conn``'s transaction; LeaseLost when ``lease`` is not in force."""
    cur = await conn.execute(_FENCE.format("%s"), (lease.worker_id, lease.fence))
    if await cur.fetchone() is None:
        raise LeaseLost(f"worker {lease.worker_id} lost its lease")


async def register(conn: Conn, *, campaigns: Sequence[str], lease_s: float) -> Lease:
    """A new worker row, its fence new from the sequence, its lease starting now."""
    for campaign in campaigns:
        jobs_table(campaign)
    if lease_s <= 0:
        raise ValueError(f"a lease must last more than 0 s, not {lease_s}")
    host = socket.gethostname()
    pid = os.getpid()
    prefix = f"{_HOST_CHARS.sub('-', host.lower()).strip('-')[:_HOST_MAX] or 'host'}.{pid}."
    started = time.monotonic()
    cur = await conn.execute(
        "WITH f AS (SELECT nextval('heygen_batch.worker_fence') AS fence) "
        "INSERT INTO heygen_batch.workers "
        "(id, fence, host, pid, campaigns, lease_s, started_at, heartbeat_at, lease_until) "
        "SELECT %(prefix)s || f.fence, f.fence, %(host)s, %(pid)s, %(campaigns)s, %(lease)s, "
        "clock_timestamp(), clock_timestamp(), "
        "clock_timestamp() + make_interval(secs => %(lease)s) FROM f RETURNING id, fence",
        {
            "prefix": prefix,
            "host": host,
            "pid": pid,
            "campaigns": list(campaigns),
            "lease": float(lease_s),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    worker_id, fence = row
    return Lease(str(worker_id), int(fence), float(lease_s), tuple(campaigns), Renewal(started))


async def heartbeat(conn: Conn, lease: Lease) -> bool:
    """Renew ``lease`` if it is still in force; False when it was lost (expired, reaped,
    or its row holds another fence)."""
    sent = time.monotonic()
    cur = await conn.execute(
        "UPDATE heygen_batch.workers SET heartbeat_at = clock_timestamp(), "
        "lease_until = clock_timestamp() + make_interval(secs => lease_s) "
        "WHERE id = %s AND fence = %s AND lease_until > clock_timestamp()",
        (lease.worker_id, lease.fence),
    )
    if cur.rowcount != 1:
        return False
    lease.renewed.at = sent
    return True


async def _existing(conn: Conn, campaigns: Sequence[str]) -> list[str]:
    """Those of ``campaigns`` whose jobs table exists: a campaign dropped while a worker
    served it took its jobs with it."""
    cur = await conn.execute(
        "SELECT c FROM unnest(%s::text[]) WITH ORDINALITY AS u (c, n) "
        "WHERE to_regclass(c || '.jobs') IS NOT NULL ORDER BY n",
        (list(campaigns),),
    )
    return [str(c) for (c,) in await cur.fetchall()]


async def _settle(
    conn: Conn, worker_id: str, campaigns: Sequence[str], sent_at: float, why: str
) -> list[tuple[str, str]]:
    """A departed worker's jobs: those it was sending become ``uncertain`` (``sent_at``
    the last moment their request may have reached the service), its pending ones free.
    The (campaign, key) pairs made uncertain."""
    uncertain: list[tuple[str, str]] = []
    error = (
        f"worker {worker_id} {why} while this job's request may have been sent; to be reconciled"
    )
    for campaign in await _existing(conn, campaigns):
        jobs = jobs_table(campaign)
        cur = await conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'uncertain', sent_at = %s, error = %s, "
                "updated_at = %s, claimed_by = NULL "
                "WHERE claimed_by = %s AND status = 'submitting' RETURNING key"
            ).format(jobs),
            (sent_at, error, now_iso(), worker_id),
        )
        uncertain.extend((campaign, str(key)) for (key,) in await cur.fetchall())
        # Only the jobs a claim matters for: others (a reconcile settling one of its
        # uncertain jobs) are not waited for, nor held.
        await conn.execute(
            sql.SQL(
                "UPDATE {} SET claimed_by = NULL WHERE claimed_by = %s AND status = 'pending'"
            ).format(jobs),
            (worker_id,),
        )
    await conn.execute("DELETE FROM heygen_batch.workers WHERE id = %s", (worker_id,))
    return uncertain


async def reap(conn: Conn, *, sent_grace_s: float) -> list[tuple[str, str]]:
    """Settle every worker whose lease expired (see ``_settle``): its requests may have
    left until ``lease_until`` (a worker starts none with less than LEASE_MARGIN_S left),
    and reached the service up to ``sent_grace_s`` later. Workers another reaper holds, or
    whose own transaction is open, are left for the next round (SKIP LOCKED): each is
    reaped once. The (campaign, key) pairs made uncertain."""
    uncertain: list[tuple[str, str]] = []
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT id, campaigns, extract(epoch FROM lease_until)::float8 "
            "FROM heygen_batch.workers WHERE lease_until <= clock_timestamp() "
            "ORDER BY id FOR UPDATE SKIP LOCKED"
        )
        for worker_id, campaigns, until in await cur.fetchall():
            uncertain += await _settle(
                conn,
                str(worker_id),
                list(campaigns),
                float(until) + sent_grace_s,
                "lost its lease",
            )
    return uncertain


async def retire(conn: Conn, lease: Lease, *, sent_grace_s: float) -> list[tuple[str, str]]:
    """A clean exit: claims dropped, the row gone. A job still ``submitting`` (the worker
    did not drain) becomes ``uncertain``, as if sent now plus ``sent_grace_s``. Nothing
    when the lease was reaped already."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT extract(epoch FROM clock_timestamp())::float8 FROM heygen_batch.workers "
            "WHERE id = %s AND fence = %s FOR UPDATE",
            (lease.worker_id, lease.fence),
        )
        row = await cur.fetchone()
        if row is None:
            return []
        now = float(row[0])
        return await _settle(conn, lease.worker_id, lease.campaigns, now + sent_grace_s, "stopped")


async def claim(conn: Conn, lease: Lease, campaign: str, limit: int) -> list[Claimed]:
    """Up to ``limit`` pending jobs of ``campaign`` (a schema ``lease`` registered), lowest
    line first, now held by ``lease``'s worker: unclaimed ones, and those of workers whose
    lease expired. LeaseLost when ``lease`` is not in force.

    An expired worker's row is locked (FOR UPDATE SKIP LOCKED) before its jobs are taken:
    a write of that worker still in progress holds the row, so its jobs wait for the next
    claim, and after this commit its fence finds no row, so it can never mark a job
    taken here as its own."""
    if campaign not in lease.campaigns:
        raise ValueError(f"worker {lease.worker_id} did not register campaign {campaign!r}")
    jobs = jobs_table(campaign)
    async with conn.transaction():
        await hold(conn, lease)
        cur = await conn.execute(
            "SELECT id FROM heygen_batch.workers WHERE lease_until <= clock_timestamp() "
            "FOR UPDATE SKIP LOCKED"
        )
        dead = [str(worker_id) for (worker_id,) in await cur.fetchall()]
        cur = await conn.execute(
            sql.SQL(
                "WITH picked AS (SELECT key FROM {jobs} AS j WHERE status = 'pending' "
                "AND (claimed_by IS NULL OR claimed_by = ANY(%(dead)s) OR NOT EXISTS "
                "(SELECT 1 FROM heygen_batch.workers AS w WHERE w.id = j.claimed_by)) "
                "ORDER BY line LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "UPDATE {jobs} AS j SET claimed_by = %(me)s FROM picked "
                "WHERE j.key = picked.key "
                "RETURNING j.key, j.line, j.body, j.request_sha256, j.attempts, j.api"
            ).format(jobs=jobs),
            {"dead": dead, "limit": limit, "me": lease.worker_id},
        )
        rows = await cur.fetchall()
    claimed = [
        Claimed(str(k), int(n), str(b), str(h), int(a), str(api)) for k, n, b, h, a, api in rows
    ]
    return sorted(claimed, key=lambda c: c.line)


async def release(conn: Conn, lease: Lease, campaign: str, keys: Sequence[str]) -> None:
    """Give back ``keys`` of ``campaign`` still pending and held by ``lease``'s worker."""
    await conn.execute(
        sql.SQL(
            "UPDATE {} SET claimed_by = NULL "
            "WHERE key = ANY(%s) AND claimed_by = %s AND status = 'pending'"
        ).format(jobs_table(campaign)),
        (list(keys), lease.worker_id),
    )


async def workers(conn: Conn) -> list[WorkerRow]:
    """Every registered worker (dead ones not yet reaped included), oldest first, with
    the jobs it holds in each of its campaigns."""
    cur = await conn.execute(
        "SELECT id, host, pid, campaigns, started_at, heartbeat_at, lease_until, "
        "extract(epoch FROM clock_timestamp() - heartbeat_at)::float8 "
        "FROM heygen_batch.workers ORDER BY started_at, id"
    )
    rows = await cur.fetchall()
    holding: dict[str, dict[str, int]] = {}
    for campaign in await _existing(conn, sorted({c for row in rows for c in row[3]})):
        cur = await conn.execute(
            sql.SQL(
                "SELECT claimed_by, count(*) FROM {} WHERE claimed_by IS NOT NULL "
                "AND status IN ('pending', 'submitting') GROUP BY claimed_by"
            ).format(jobs_table(campaign))
        )
        for worker_id, count in await cur.fetchall():
            holding.setdefault(str(worker_id), {})[campaign] = int(count)
    return [
        WorkerRow(
            id=str(r[0]),
            host=str(r[1]),
            pid=int(r[2]),
            campaigns=tuple(r[3]),
            started_at=r[4],
            heartbeat_at=r[5],
            lease_until=r[6],
            heartbeat_age_s=float(r[7]),
            holding=holding.get(str(r[0]), {}),
        )
        for r in rows
    ]
