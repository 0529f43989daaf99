"""Group ledger writes: one commit releases many sends.

Workers hand statements to the writer. ``write_durably`` waits until the
statement is committed (a job must be on disk as ``submitting`` before its
request leaves); ``write`` does not wait. A single background task commits
everything queued so far in one transaction, in a worker thread so the event
loop keeps sending while the database commits. While one commit is on disk, the next
batch gathers, so under load each fsync covers many jobs.

Plain writes (a job recorded as read, a request's outcome) linger until the next
durable write carries them, or ``LINGER_S`` at most: at a steady rate they cost no
fsync of their own. Losing them to a crash is harmless by design: a job whose
outcome was lost is still ``submitting`` on disk, which the next run reconciles.

Records whose order against the rest does not matter (``note``: one row per request,
for the campaign report) wait apart and go at the end of the next commit, so they
never split a run of like statements that the database takes in one ``executemany``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from engine.errors import EngineError
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger

#: Longest a plain write waits for company before it is committed alone.
LINGER_S = 0.1
#: Plain writes queued beyond this many are committed without waiting any longer.
EAGER_STATEMENTS = 2000


class LedgerWriteFailed(EngineError):
    """A commit failed (disk full, file removed): nothing more may be sent."""


class BatchWriter:
    def __init__(self, ledger: Path | Callable[[], Ledger]) -> None:
        """``ledger``: a ledger file's path, or what opens the ledger (``Ledger.reopen``,
        or ``open_ledger`` with a worker's fence as guard) on a connection of its own."""
        # A connection of its own, used only from the writer's thread, so reads
        # on the event loop never share a connection with a transaction.
        self._ledger = Ledger(ledger) if isinstance(ledger, Path) else ledger()
        self._queue: list[Statement] = []
        self._notes: list[Statement] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._linger: asyncio.TimerHandle | None = None
        self._closed = False
        self._failed: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        #: Transactions committed and statements they carried, for the curious and for tests.
        self.commits = 0
        self.statements = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    def write(self, *statements: Statement) -> None:
        """Queue ``statements``; they are committed soon, in order, but not waited for."""
        if self._failed is not None:
            # A write that can never be committed must stop the caller before it sends.
            raise self._failure() from self._failed
        if self._closed:
            raise RuntimeError("ledger writer is closed")
        self._queue.extend(statements)
        if len(self._queue) >= EAGER_STATEMENTS:
            self._wake.set()
        elif self._linger is None and self._queue:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._wake.set)

    def note(self, statement: Statement) -> None:
        """Queue a record of what happened (an attempt) that nothing else depends on:
        committed with the next batch, after its ordered statements, never waited for."""
        if self._failed is not None or self._closed:
            # The run is stopping over the ledger already; a record is not worth a second error.
            return
        self._notes.append(statement)
        if self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._wake.set)

    async def write_durably(self, *statements: Statement) -> None:
        """Queue ``statements`` and return once they (and all queued before) are on disk."""
        self.write(*statements)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.write_durably()

    async def close(self) -> None:
        if self._task is None:
            return
        try:
            if self._failed is None:
                await self.flush()
        finally:
            self._closed = True
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._ledger.close()
        if self._failed is not None:
            raise self._failure() from self._failed

    def _failure(self) -> LedgerWriteFailed:
        failure = LedgerWriteFailed(f"the ledger cannot be written: {self._failed}")
        # Kept for the waiters too, which get it without a ``raise ... from``.
        failure.__cause__ = self._failed
        return failure

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            if not self._queue and not self._notes and not self._waiters:
                if self._closed:
                    return
                continue
            batch, self._queue = self._queue, []
            if self._notes:
                batch += self._notes
                self._notes = []
            waiters, self._waiters = self._waiters, []
            try:
                if batch:
                    await asyncio.to_thread(self._ledger.transaction, batch)
                    self.commits += 1
                    self.statements += len(batch)
            except Exception as err:
                self._failed = err
                failure = self._failure()
                for waiter in waiters + self._waiters:
                    if not waiter.done():
                        waiter.set_exception(failure)
                self._waiters = []
                return
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
