"""Limits shared by every worker of an account, on the database's clock.

An account is a short hash naming one API key at one address (never the key itself):
two keys have independent limits. Starts are granted by ``heygen_batch.start_allowed``
(see ``fleet_schema``), one call serialised by the account's ``limits`` row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from engine.ledger.postgres.constants import (
    CONNECT_TIMEOUT_S,
    GRANT_KEEP_S,
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
    in any window of ``period_s``. ValueError for a limit that grants nothing."""
    if n < 1 or period_s <= 0:
        raise ValueError(f"a rate must be at least 1 per a positive period, not {n}/{period_s}s")
    if max_rendering is not None and (max_rendering < 1 or campaign is None or key is None):
        raise ValueError("max_rendering needs a cap of at least 1, and the job's campaign and key")
    cur = await conn.execute(
        "SELECT heygen_batch.start_allowed(%s, %s, %s, %s, %s, %s, %s, %s)",
        (account, n, period_s, GRANT_KEEP_S, max_rendering, campaign, key, RENDER_SLOT_WAIT_S),
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


@asynccontextmanager
async def advisory(url: str, purpose: str, account: str) -> AsyncIterator[bool]:
    """Try for the session-level advisory lock ``purpose`` of ``account`` on a connection
    of its own, held for the block: True when this holder has it. The server frees it
    when that connection is lost, so a dead holder never keeps it."""
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
    )
    try:
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"{purpose}:{account}",)
        )
        row = await cur.fetchone()
        yield bool(row and row[0])
    finally:
        # Closing the session frees the lock; no unlock to fail on a lost connection.
        await conn.close()
