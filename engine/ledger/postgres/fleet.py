"""The coordination of many workers through PostgreSQL: leases, claims, shared limits.

``Fleet`` holds a pool of autocommit connections and runs the statements of ``leases``
(workers, fencing, claims, reaping) and ``limits`` (grants, pauses, render slots,
one-holder roles bound to leases). Every time is the database's clock, except a worker's
own check of its lease (``lease_left``, monotonic). A database that cannot be reached raises
LedgerUnavailable (naming the URL without its password); a lost lease LeaseLost.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from engine.errors import ConfigError, one_line, without_password
from engine.ledger.database import LedgerUnavailable, unreachable
from engine.ledger.postgres import leases, limits
from engine.ledger.postgres.connection import connection_error
from engine.ledger.postgres.constants import CONNECT_TIMEOUT_S, DEFAULT_LEASE_S
from engine.ledger.postgres.fleet_schema import migrate
from engine.ledger.postgres.leases import Claimed, Lease, WorkerRow, lease_left, lease_margin
from engine.ledger.postgres.limits import Slot

#: An account: a short hash of (base URL, API key), never the key.
ACCOUNT = str

__all__ = [
    "ACCOUNT",
    "Claimed",
    "Fleet",
    "Lease",
    "Slot",
    "WorkerRow",
    "lease_left",
    "lease_margin",
]

_UNREACHABLE = (psycopg.OperationalError, PoolTimeout)


class Fleet:
    """Workers' coordination on the database at ``url``. Open with ``Fleet.open``."""

    def __init__(self, url: str, pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]]):
        self._url = url
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 4) -> Fleet:
        """Connect (up to ``pool_size`` connections) and create or migrate the shared
        tables. LedgerUnavailable when the database cannot be reached within
        ``CONNECT_TIMEOUT_S``; ConfigError when it refuses them (no right to)."""
        pool: AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S)},
            timeout=CONNECT_TIMEOUT_S,
            # A connection the server dropped while idle (a restart, a failover) is
            # replaced before use, not reported as the database being unreachable.
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        # One connection first, outside the pool: a database that cannot be reached is
        # known at once, by its own error, rather than after the pool's retries.
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
            ) as conn:
                await migrate(conn)
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as err:
            await pool.close()
            raise connection_error(url, err) from err
        except PoolTimeout as err:
            await pool.close()
            raise unreachable(url, str(err) or type(err).__name__) from err
        except psycopg.Error as err:
            # Reached, but refused (no right to create the shared schema, say): the fix
            # is the database's configuration.
            raise ConfigError(
                f"the ledger database {without_password(url)} refused the workers' "
                f"tables: {one_line(str(err))}"
            ) from err
        return cls(url, pool)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[tuple[Any, ...]]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except _UNREACHABLE as err:
            raise unreachable(self._url, str(err) or type(err).__name__) from err

    # --- workers and leases ---------------------------------------------------------------

    async def register(
        self, *, campaigns: Sequence[str], lease_s: float = DEFAULT_LEASE_S
    ) -> Lease:
        """A new worker holding a lease of ``lease_s`` seconds, for the campaign schemas
        ``campaigns`` (``campaign_<name>``); its fence is new."""
        async with self._connection() as conn:
            return await leases.register(conn, campaigns=campaigns, lease_s=lease_s)

    async def heartbeat(self, lease: Lease) -> bool:
        """Renew ``lease``; False when it was lost (expired, reaped, or re-fenced)."""
        async with self._connection() as conn:
            return await leases.heartbeat(conn, lease)

    async def retire(self, lease: Lease, *, sent_grace_s: float = 0.0) -> list[tuple[str, str]]:
        """A clean exit: claims released, the worker's row gone (see ``leases.retire``)."""
        async with self._connection() as conn:
            return await leases.retire(conn, lease, sent_grace_s=sent_grace_s)

    async def reap(self, *, sent_grace_s: float) -> list[tuple[str, str]]:
        """Settle the workers whose lease expired: (campaign schema, key) of the jobs
        made ``uncertain`` (see ``leases.reap``)."""
        async with self._connection() as conn:
            return await leases.reap(conn, sent_grace_s=sent_grace_s)

    def fence_sql(self, lease: Lease) -> tuple[str, tuple[object, ...]]:
        """The guard of the worker's ledger writer (see ``leases.fence_sql``): run first in
        each of its transactions, it returns no row once ``lease`` is lost."""
        return leases.fence_sql(lease)

    # --- claims ---------------------------------------------------------------------------

    async def claim(self, lease: Lease, campaign: str, limit: int) -> list[Claimed]:
        """Up to ``limit`` pending jobs of ``campaign`` (a schema name), lowest line first
        (see ``leases.claim``). LeaseLost when ``lease`` is not in force."""
        async with self._connection() as conn:
            return await leases.claim(conn, lease, campaign, limit)

    async def release(self, lease: Lease, campaign: str, keys: Sequence[str]) -> None:
        """Give back the still-pending jobs ``keys`` of ``campaign`` ``lease`` holds."""
        async with self._connection() as conn:
            await leases.release(conn, lease, campaign, keys)

    async def workers(self) -> list[WorkerRow]:
        """Every registered worker with what it holds, for ``status``."""
        async with self._connection() as conn:
            return await leases.workers(conn)

    # --- limits per account ---------------------------------------------------------------

    async def start_allowed(
        self,
        account: ACCOUNT,
        n: int,
        period_s: float,
        *,
        max_rendering: int | None = None,
        campaign: str | None = None,
        key: str | None = None,
    ) -> float:
        """0.0 when a start is granted, else seconds to wait (see ``limits.start_allowed``)."""
        async with self._connection() as conn:
            return await limits.start_allowed(
                conn,
                account,
                n,
                period_s,
                max_rendering=max_rendering,
                campaign=campaign,
                key=key,
            )

    async def pause(self, account: ACCOUNT, seconds: float) -> None:
        """A 429: ``account`` is granted nothing for ``seconds``, by every worker."""
        async with self._connection() as conn:
            await limits.pause(conn, account, seconds)

    async def slot_video(self, account: ACCOUNT, campaign: str, key: str, video_id: str) -> None:
        async with self._connection() as conn:
            await limits.slot_video(conn, account, campaign, key, video_id)

    async def free_slot(self, account: ACCOUNT, campaign: str, key: str) -> None:
        async with self._connection() as conn:
            await limits.free_slot(conn, account, campaign, key)

    async def rendering(self, account: ACCOUNT) -> list[Slot]:
        async with self._connection() as conn:
            return await limits.rendering(conn, account)

    def reconciler(self, account: ACCOUNT, lease: Lease) -> AbstractAsyncContextManager[bool]:
        """Held for a block: True when the worker of ``lease`` is ``account``'s one
        reconciler now (see ``limits.take_role``): lost with its lease, not its connection."""
        return self._role("reconcile", account, lease)

    def poller(self, account: ACCOUNT, lease: Lease) -> AbstractAsyncContextManager[bool]:
        """Held for a block: True when the worker of ``lease`` is ``account``'s one
        render-slot poller now (see ``limits.take_role``)."""
        return self._role("poll", account, lease)

    @asynccontextmanager
    async def _role(self, role: str, account: ACCOUNT, lease: Lease) -> AsyncIterator[bool]:
        async with self._connection() as conn:
            held = await limits.take_role(conn, account, role, lease.worker_id, lease.fence)
        try:
            yield held
        finally:
            if held:
                # A release that cannot reach the database is left to the lease's end.
                with contextlib.suppress(LedgerUnavailable):
                    async with self._connection() as conn:
                        await limits.release_role(conn, account, role, lease.worker_id)
