"""The ledger on a PostgreSQL server (psycopg 3, sync): one campaign's schema per connection.

The ledger's statements are written with SQLite's ``?`` / ``?N`` marks; each distinct
SQL text is translated once (cached) to psycopg's ``%s`` / ``%(pN)s``. The connection's
``search_path`` is the campaign's schema, then ``heygen_batch``, so every statement
names its tables unqualified, as on SQLite.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from engine.errors import ConfigError, EngineError, without_password
from engine.ledger.database import (
    Fenced,
    Guard,
    LedgerStoreError,
    LedgerUnavailable,
    Row,
    Statement,
    StoreFeatures,
    unreachable,
)
from engine.ledger.postgres.constants import CONNECT_TIMEOUT_S, SHARED_SCHEMA, STREAM_BATCH

FEATURES = StoreFeatures(name="PostgreSQL", concurrent_workers=True, index_hints=False)

# A quoted literal (left alone), a mark, or a percent sign (psycopg's own escape).
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?(\d*)|%")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """``sql`` with psycopg's marks, and whether its parameters are numbered (``?N``).

    Raises ValueError for a statement mixing ``?`` and ``?N`` (SQLite would take it;
    no statement of the ledger does)."""
    kinds: set[bool] = set()

    def swap(found: re.Match[str]) -> str:
        text = found.group(0)
        if text.startswith("'"):
            return text
        if text == "%":
            return "%%"
        number = found.group(1)
        kinds.add(bool(number))
        return f"%(p{number})s" if number else "%s"

    translated = _TOKEN.sub(swap, sql)
    if len(kinds) > 1:
        raise ValueError(f"a statement mixes ? and ?N marks: {sql}")
    return translated, kinds == {True}


def bind(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any] | dict[str, Any]]:
    """``(sql, params)`` as psycopg takes them."""
    text, numbered = translate(sql)
    if numbered:
        return text, {f"p{i}": value for i, value in enumerate(params, start=1)}
    return text, params


#: What a server that was reached answers when the URL names a database or a user it does
#: not have, or a password or host it refuses: libpq gives such a refusal no SQLSTATE,
#: only the server's FATAL text.
_REFUSED = re.compile(
    r"FATAL:\s+(database \S+ does not exist|role \S+ does not exist|"
    r"password authentication failed|no pg_hba\.conf entry)",
    re.IGNORECASE,
)


def connection_error(url: str, err: psycopg.Error) -> EngineError:
    """Why a connection to ``url`` could not be made, as the error to stop with: a
    ConfigError (exit 2) when the server refused what the URL names, which no wait
    fixes; else LedgerUnavailable (exit 75: try again later)."""
    if _REFUSED.search(str(err)):
        return ConfigError(
            f"the ledger database {without_password(url)} refused the connection: "
            f"{one_line(err)}. Check the database name, user and password in --ledger."
        )
    return unreachable(url, str(err) or type(err).__name__)


def connect(url: str) -> psycopg.Connection[Row]:
    """An autocommit connection to ``url``. Raises ``connection_error``'s errors."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S))
    except psycopg.Error as err:
        raise connection_error(url, err) from err


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


class PostgresDatabase:
    """One connection to one campaign's schema (``Database``).

    ``guard``: a statement (the fleet's fence check) run first inside every transaction;
    when it returns no row the transaction is rolled back and ``Fenced`` raised.
    """

    features = FEATURES
    file: Path | None = None

    def __init__(
        self,
        conn: psycopg.Connection[Row],
        url: str,
        schema: str,
        campaign: str,
        guard: Guard | None = None,
    ) -> None:
        self._conn = conn
        self._url = url
        self.schema = schema
        self.campaign = campaign
        self.guard = guard
        conn.execute(
            pgsql.SQL("SET search_path TO {}, {}").format(
                pgsql.Identifier(schema), pgsql.Identifier(SHARED_SCHEMA)
            )
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        text, bound = bind(sql, params)
        try:
            cursor = self._conn.execute(text, bound)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as err:
            raise self._error(err) from err

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        text, bound = bind(sql, params)
        # A cursor held on the server across the autocommit's end: the connection stays
        # free for other statements between batches (download writes while it pages).
        name = f"ledger_{uuid.uuid4().hex[:12]}"
        try:
            with self._conn.cursor(name=name, withhold=True) as cursor:
                cursor.itersize = STREAM_BATCH
                cursor.execute(text, bound)
                yield from cursor
        except psycopg.Error as err:
            raise self._error(err) from err

    def transaction(self, work: Iterable[Statement]) -> None:
        try:
            with self._conn.transaction(), self._conn.cursor() as cursor:
                if self.guard is not None:
                    guard_sql, guard_params = bind(*self.guard)
                    cursor.execute(guard_sql, guard_params)
                    if cursor.fetchone() is None:
                        raise Fenced(
                            f"this worker's lease on {self.describe()} was lost (another "
                            "worker reaped it): nothing of this transaction was written"
                        )
                for sql, run in groupby(work, key=itemgetter(0)):
                    batch = [bind(sql, params) for _, params in run]
                    if len(batch) == 1:
                        cursor.execute(batch[0][0], batch[0][1])
                    else:
                        cursor.executemany(batch[0][0], [b for _, b in batch])
        except psycopg.Error as err:
            raise self._error(err) from err

    def has_index(self, name: str) -> bool:
        found = self.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = ? AND indexname = ?", (self.schema, name)
        )
        return bool(found)

    def describe(self) -> str:
        return f"{without_password(self._url)} (campaign {self.campaign})"

    def reopen(self) -> PostgresDatabase:
        conn = connect(self._url)
        return PostgresDatabase(conn, self._url, self.schema, self.campaign, self.guard)

    def close(self) -> None:
        self._conn.close()

    def _error(self, err: psycopg.Error) -> LedgerStoreError:
        if isinstance(err, psycopg.OperationalError) or self._conn.closed:
            return LedgerUnavailable(f"the ledger database {self.describe()}: {one_line(err)}")
        return LedgerStoreError(f"{self.describe()}: {one_line(err)}")
