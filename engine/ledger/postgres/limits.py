"""Limits shared by every worker of an account, on the database's clock.

An account is a short hash naming one API key at one address (never the key itself):
two keys have independent limits. Starts are granted by ``heygen_batch.start_allowed``
(see ``fleet_schema``), one call serialised by the account's ``limits`` row. One-holder
roles (the reconciler, the render poller) live in ``roles``, bound to the holder's lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from engine.ledger.postgres.constants import (
    GRANT_KEEP_S,
    RATE_HELD_PERIODS,
    RENDER_SLOT_WAIT_S,
)

Conn = AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class Slot:
    """A job holding one of its account's render slots: ``video_id`` None until the
    service named it; ``started_at`` the database's time of the grant."""

    campaign: str
    key: str
    video_id: str | None
    started_at: datetime


async def start_allowed(
    conn: Conn,
    account: str,
    n: int,
    period_s: float,
    *,
    max_rendering: int | None = None,
    campaign: str | None = None,
    key: str | None = None,
) -> float:
    """0.0: a start is granted (and, given ``campaign`` and ``key``, that job holds a render
    slot); else the seconds to wait before asking again: until the oldest of the last
    ``n`` grants is ``period_s`` old, the account's pause ends, or (``max_rendering``)
    ``RENDER_SLOT_WAIT_S`` while that many jobs hold a slot. Never more than ``n`` grants
    in any window of ``period_s``, nor more than any other rate asked for on ``account``
    within its last ``RATE_HELD_PERIODS`` periods: the strictest holds for every caller.
    ValueError for a limit that grants nothing."""
    if n < 1 or period_s <= 0:
        raise ValueError(f"a rate must be at least 1 per a positive period, not {n}/{period_s}s")
    if max_rendering is not None and (max_rendering < 1 or campaign is None or key is None):
        raise ValueError("max_rendering needs a cap of at least 1, and the job's campaign and key")
    cur = await conn.execute(
        "SELECT heygen_batch.start_allowed(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            account,
            n,
            period_s,
            GRANT_KEEP_S,
            max_rendering,
            campaign,
            key,
            RENDER_SLOT_WAIT_S,
            RATE_HELD_PERIODS,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])


async def pause(conn: Conn, account: str, seconds: float) -> None:
    """Grant ``account`` nothing for ``seconds`` from now (a 429); a longer pause in force
    is kept."""
    await conn.execute(
        "INSERT INTO heygen_batch.limits AS l (account, paused_until) "
        "VALUES (%s, clock_timestamp() + make_interval(secs => %s)) "
        "ON CONFLICT (account) DO UPDATE "
        "SET paused_until = greatest(l.paused_until, excluded.paused_until)",
        (account, max(0.0, seconds)),
    )


async def slot_video(conn: Conn, account: str, campaign: str, key: str, video_id: str) -> None:
    """Record the video a job holding a slot was given, for the poller to follow."""
    await conn.execute(
        "UPDATE heygen_batch.rendering SET video_id = %s "
        "WHERE account = %s AND campaign = %s AND key = %s",
        (video_id, account, campaign, key),
    )


async def free_slot(conn: Conn, account: str, campaign: str, key: str) -> None:
    """The job's render ended (or it never started): its slot is free."""
    await conn.execute(
        "DELETE FROM heygen_batch.rendering WHERE account = %s AND campaign = %s AND key = %s",
        (account, campaign, key),
    )


async def rendering(conn: Conn, account: str) -> list[Slot]:
    """The jobs holding ``account``'s render slots, oldest first."""
    cur = await conn.execute(
        "SELECT campaign, key, video_id, started_at FROM heygen_batch.rendering "
        "WHERE account = %s ORDER BY started_at, campaign, key",
        (account,),
    )
    return [Slot(*row) for row in await cur.fetchall()]


async def take_role(conn: Conn, account: str, role: str, worker_id: str, fence: int) -> bool:
    """Make worker ``worker_id`` (fence ``fence``, its lease in force) ``account``'s one
    holder of ``role``: True when the role was free, already its own, or held by a
    worker whose lease has ended (or whose row is gone); False otherwise, and always
    False once the asker's own lease is lost."""
    cur = await conn.execute(
        "INSERT INTO heygen_batch.roles AS r (account, role, worker_id, taken_at) "
        "SELECT %s, %s, w.id, clock_timestamp() FROM heygen_batch.workers w "
        "WHERE w.id = %s AND w.fence = %s AND w.lease_until > clock_timestamp() "
        "ON CONFLICT (account, role) DO UPDATE "
        "SET worker_id = excluded.worker_id, taken_at = excluded.taken_at "
        "WHERE r.worker_id = excluded.worker_id OR NOT EXISTS ("
        "SELECT 1 FROM heygen_batch.workers h "
        "WHERE h.id = r.worker_id AND h.lease_until > clock_timestamp()) "
        "RETURNING worker_id",
        (account, role, worker_id, fence),
    )
    return await cur.fetchone() is not None


async def release_role(conn: Conn, account: str, role: str, worker_id: str) -> None:
    """Give up ``role`` of ``account`` if ``worker_id`` still holds it."""
    await conn.execute(
        "DELETE FROM heygen_batch.roles WHERE account = %s AND role = %s AND worker_id = %s",
        (account, role, worker_id),
    )
