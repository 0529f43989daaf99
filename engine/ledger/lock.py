"""One run per ledger: an OS file lock that dies with its process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from engine.errors import EngineError


class LedgerBusy(EngineError):
    """Another process holds this ledger."""


@contextmanager
def ledger_lock(ledger: Path) -> Iterator[None]:
    """Hold ``<ledger>.lock`` for the block, or raise LedgerBusy at once.

    flock is released by the kernel when its holder dies, so a lock left by a
    killed run never blocks the next one.
    """
    lock = FileLock(str(ledger) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout as err:
        raise LedgerBusy(
            f"{ledger} is in use by another heygen-batch run; wait for it to finish."
        ) from err
    try:
        yield
    finally:
        lock.release()
