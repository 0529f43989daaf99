"""The seam between the ledger and its database: one small adapter per store.

Every statement of the ledger is written once, in the SQL both SQLite and PostgreSQL
accept (``INSERT ... ON CONFLICT``, ``CASE``, ``?`` and ``?N`` placeholders); what the
two stores do differently (connecting, transactions, placeholders, an index hint) is
behind ``Database``. Code branches on ``StoreFeatures``, never on a store's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.errors import EngineError, one_line, without_password

Row = tuple[Any, ...]
#: One statement with its parameters: ``?`` (in order) or ``?N`` (by number) marks.
Statement = tuple[str, Sequence[Any]]
#: A statement run first in every transaction, which must return a row (a worker's fence).
Guard = Statement


@dataclass(frozen=True, slots=True)
class StoreFeatures:
    """What a store can do. ``name`` is for messages only."""

    name: str
    #: Many processes may write one campaign at once (claims, leases): PostgreSQL.
    concurrent_workers: bool
    #: The SQL may name the index a query must use (SQLite's ``INDEXED BY``).
    index_hints: bool


class LedgerStoreError(EngineError):
    """The ledger's database refused a statement (a constraint, a full disk): its
    transaction was rolled back."""


class LedgerUnavailable(LedgerStoreError):
    """The ledger's database cannot be reached or used (a server down, a dropped
    connection): nothing more may be sent on its behalf."""


def unreachable(url: str, reason: str) -> LedgerUnavailable:
    """The error for a database that cannot be reached: its URL without a password."""
    return LedgerUnavailable(
        f"cannot reach the ledger database {without_password(url)}: {one_line(reason)}"
    )


class Fenced(LedgerUnavailable):
    """This process's claim on the ledger was taken from it (its lease expired and
    another worker reaped it): its transaction was rolled back, nothing was written."""


class Database(Protocol):
    """A connection to one ledger, used from one thread at a time."""

    @property
    def features(self) -> StoreFeatures: ...

    @property
    def file(self) -> Path | None:
        """The ledger's file (SQLite), None for a database server."""
        ...

    @property
    def campaign(self) -> str | None:
        """The campaign's name on a database holding many (PostgreSQL), else None."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement outside any explicit transaction; its rows (or [])."""
        ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows of a query read a batch at a time: a million rows never in memory."""
        ...

    def transaction(self, work: Iterable[Statement]) -> None:
        """Run ``work`` in order as one commit; on any error nothing of it is kept."""
        ...

    def has_index(self, name: str) -> bool:
        """Whether the ledger's schema has the index ``name`` (an old read-only file may not)."""
        ...

    def describe(self) -> str:
        """The ledger for messages: a path, or the URL without its password and the campaign."""
        ...

    def reopen(self) -> Database:
        """Another connection to the same ledger, with the same guard (a writer's own)."""
        ...

    def close(self) -> None: ...
