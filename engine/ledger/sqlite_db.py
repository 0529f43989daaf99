"""The ledger in one SQLite file: WAL, a full fsync per commit, writes in BEGIN IMMEDIATE."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.ledger.database import LedgerStoreError, Row, Statement, StoreFeatures
from engine.ledger.migrations import migrate

_WAL_TRIES = 50
_WAL_RETRY_S = 0.05

FEATURES = StoreFeatures(name="SQLite", concurrent_workers=False, index_hints=True)


def require_ledger(path: Path) -> None:
    """Fail before anything (a lock file, a connection) is created for a missing ledger."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such ledger; run `heygen-batch run` first.")


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out another connection that is creating the same file.

    Changing the journal mode does not go through the busy handler, so a second
    process opening a brand-new ledger at the same moment would fail at once.
    """
    for _ in range(_WAL_TRIES - 1):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err):
                raise
            time.sleep(_WAL_RETRY_S)
    conn.execute("PRAGMA journal_mode=WAL")


class SqliteDatabase:
    """One connection to a ledger file (``Database``)."""

    features = FEATURES
    campaign: str | None = None

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.file: Path | None = path
        self._path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> SqliteDatabase:
        """Open (and with ``create``, make) the ledger at ``path``, its schema brought up to
        date. Raises ConfigError for a missing file (without ``create``) or one that is not
        a ledger."""
        if not create:
            require_ledger(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: every transaction is explicit and short.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            _enable_wal(conn)
            # FULL: a commit survives a power cut, not only a killed process.
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn)
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{path}: not a heygen-batch ledger ({err}).") from err
        return cls(conn, path)

    @classmethod
    def open_read_only(cls, path: Path) -> SqliteDatabase:
        """Open for reading only: no pragma, no migration, nothing written (``--dry-run``)."""
        require_ledger(path)
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            conn.execute("SELECT count(*) FROM jobs").fetchone()
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{path}: not a heygen-batch ledger ({err}).") from err
        return cls(conn, path)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise LedgerStoreError(str(err)) from err

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        try:
            yield from self._conn.execute(sql, params)
        except sqlite3.Error as err:
            raise LedgerStoreError(str(err)) from err

    def transaction(self, work: Iterable[Statement]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Runs of the same statement (a batch of marks, of inserts) go to SQLite in
                # one executemany: the order of statements is kept, the per-call cost is not.
                for sql, run in itertools.groupby(work, key=itemgetter(0)):
                    conn.executemany(sql, [params for _, params in run])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise LedgerStoreError(str(err)) from err

    def has_index(self, name: str) -> bool:
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    def describe(self) -> str:
        return str(self.file)

    def reopen(self) -> SqliteDatabase:
        return SqliteDatabase.open(self._path)

    def close(self) -> None:
        self._conn.close()
