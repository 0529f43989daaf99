"""One run per ledger: an OS file lock that dies with its process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from engine.errors import ConfigError, EngineError


class LedgerBusy(EngineError):
    """Another process holds this ledger."""


def lock_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lock")


@contextmanager
def ledger_lock(ledger: Path) -> Iterator[None]:
    """Hold ``<ledger>.lock`` for the block, or raise LedgerBusy at once.

    Take it before opening the ledger: a process that loses the race must not
    so much as open the database. flock is released by the kernel when its
    holder dies, so a lock left by a killed run never blocks the next one.
    """
    # The first run of a campaign may name a ledger in a folder not made yet (older
    # filelock releases do not create it).
    path = lock_path(ledger)
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        # filelock reports a lock file it cannot create as "held by someone else";
        # trying first turns a read-only folder into the error it really is.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as err:
        raise ConfigError(
            f"cannot create {path} ({err.strerror}); give --ledger a path in a folder "
            "you can write to."
        ) from err
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout as err:
        raise LedgerBusy(
            f"{ledger} is in use by another heygen-batch run; nothing was done. "
            "Try again when it has finished."
        ) from err
    try:
        yield
    finally:
        lock.release()
