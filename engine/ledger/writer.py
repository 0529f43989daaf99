"""Group ledger writes: one commit releases many sends.

Workers hand statements to the writer. ``write_durably`` waits until the
statement is committed (a job must be on disk as ``submitting`` before its
request leaves); ``write`` does not wait. A single background task commits
everything queued so far in one transaction, in a worker thread so the event
loop keeps sending while SQLite fsyncs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.ledger.store import Ledger, Statement


class BatchWriter:
    def __init__(self, ledger_path: Path) -> None:
        # A connection of its own, used only from the writer's thread, so reads
        # on the event loop never share a connection with a transaction.
        self._ledger = Ledger(ledger_path)
        self._queue: list[Statement] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    def write(self, *statements: Statement) -> None:
        if self._closed:
            raise RuntimeError("ledger writer is closed")
        self._queue.extend(statements)
        self._wake.set()

    async def write_durably(self, *statements: Statement) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.write(*statements)
        await waiter

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self.write_durably()

    async def close(self) -> None:
        if self._task is None:
            return
        await self.flush()
        self._closed = True
        self._wake.set()
        await self._task
        self._ledger.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue and not self._waiters:
                if self._closed:
                    return
                continue
            batch, self._queue = self._queue, []
            waiters, self._waiters = self._waiters, []
            try:
                await asyncio.to_thread(self._ledger.transaction, batch)
            except BaseException as err:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(err)
                raise
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
