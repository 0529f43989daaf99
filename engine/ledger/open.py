"""Open the ledger a ``--ledger`` names: a SQLite file's path, or a PostgreSQL URL
(one campaign of the database it names, ``--campaign``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ConfigError, without_password
from engine.ledger.database import Guard, LedgerUnavailable
from engine.ledger.lock import ledger_lock
from engine.ledger.sqlite_db import require_ledger
from engine.ledger.store import Ledger

if TYPE_CHECKING:
    from engine.ledger.postgres.connection import PostgresDatabase

_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(spec: str | Path) -> bool:
    """Whether ``spec`` names a PostgreSQL database rather than a ledger file."""
    return isinstance(spec, str) and spec.lower().startswith(_SCHEMES)


def open_ledger(
    spec: str | Path,
    *,
    campaign: str | None = None,
    create: bool = True,
    key_env: str | None = None,
    guard: Guard | None = None,
) -> Ledger:
    """The ledger ``spec`` names, its schema brought up to date.

    A file: made when missing if ``create`` (else ConfigError); ``campaign`` must be None.
    A PostgreSQL URL: campaign ``campaign``, registered and made when new if ``create``
    (then ``campaign`` is required; ``key_env``: the variable holding its API key, see
    ``create_campaign``), else an existing one, by default the database's only one.
    ``guard``: a statement run first in every transaction of this connection, which
    must return a row (a worker's fence; see ``PostgresDatabase``).

    Raises ConfigError (exit 2): a missing file, a bad or unknown campaign, a campaign
    given for a file; LedgerUnavailable: the server cannot be reached.
    """
    if not is_database_url(spec):
        if campaign is not None:
            raise _campaign_on_file(spec)
        if guard is not None:
            raise ConfigError(f"{spec}: a ledger file takes no guard (one process at a time).")
        return Ledger(Path(spec), create=create)
    return Ledger(_open_database(str(spec), campaign, create, key_env, guard, read_only=False))


def open_read_only(spec: str | Path, *, campaign: str | None = None) -> Ledger:
    """The ledger ``spec`` names, for reading only (``status``, ``--dry-run``): on a
    file nothing is written, not even a migration; on a server every transaction of
    this connection is read-only. Raises as ``open_ledger``."""
    if not is_database_url(spec):
        if campaign is not None:
            raise _campaign_on_file(spec)
        return Ledger.read_only(Path(spec))
    return Ledger(_open_database(str(spec), campaign, False, None, None, read_only=True))


@dataclass(frozen=True)
class LedgerSpec:
    """A ledger as ``--ledger`` and ``--campaign`` name it, not opened yet: a file's path,
    or a PostgreSQL URL and (None: the database's only one) a campaign."""

    where: str | Path
    campaign: str | None = None

    def __post_init__(self) -> None:
        if self.campaign is not None and not is_database_url(self.where):
            raise _campaign_on_file(self.where)

    @property
    def file(self) -> Path | None:
        """The ledger's file; None for a database."""
        return None if is_database_url(self.where) else Path(self.where)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """For messages and summaries: the path, or the URL (no password) and campaign."""
        if self.file is not None:
            return str(self.file)

        named = f" (campaign {self.campaign})" if self.campaign else ""
        return without_password(str(self.where)) + named

    def open(
        self, *, create: bool = True, key_env: str | None = None, guard: Guard | None = None
    ) -> Ledger:
        """``open_ledger`` of this ledger."""
        return open_ledger(
            self.where, campaign=self.campaign, create=create, key_env=key_env, guard=guard
        )

    def open_read_only(self) -> Ledger:
        return open_read_only(self.where, campaign=self.campaign)

    def require(self) -> None:
        """Fail before anything is made for a ledger file that does not exist (ConfigError).
        A database's campaign is looked for when it is opened."""
        if self.file is not None:
            require_ledger(self.file)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time on a ledger file (``ledger_lock``: LedgerBusy when held).
        A database takes no such lock: processes share it by design, each job's claim
        (``jobs.claimed_by``) being what keeps them apart."""
        if self.file is None:
            yield
            return
        with ledger_lock(self.file):
            yield


def open_database_read_only(spec: LedgerSpec) -> Ledger | None:
    """``spec``'s campaign read-only, or None when the database does not hold it yet (a
    first run would make it). Raises LedgerUnavailable as ``open_read_only``."""
    try:
        return spec.open_read_only()
    except ConfigError:
        if spec.campaign is None:
            raise
        return None


def _campaign_on_file(spec: str | Path) -> ConfigError:
    return ConfigError(
        f"--campaign applies to a PostgreSQL ledger (--ledger postgresql://...); {spec} is a "
        "ledger file, which holds one campaign. Leave --campaign out."
    )


def _open_database(
    url: str,
    campaign: str | None,
    create: bool,
    key_env: str | None,
    guard: Guard | None,
    *,
    read_only: bool,
) -> PostgresDatabase:
    # Imported here: a SQLite run never loads the PostgreSQL driver.
    import psycopg

    from engine.ledger.postgres import campaigns
    from engine.ledger.postgres.connection import PostgresDatabase, connect

    conn = connect(url)
    try:
        if not read_only:
            campaigns.prepare_database(conn)
        if create:
            if campaign is None:
                raise ConfigError(
                    f"{without_password(url)} holds many campaigns: "
                    "name this one with --campaign NAME."
                )
            name = campaigns.campaign_name(campaign)
            schema = campaigns.create_campaign(conn, name, key_env)
        else:
            name = campaigns.existing_campaign(conn, campaign, without_password(url))
            schema = campaigns.schema_of(name)
            if not read_only:
                campaigns.create_campaign(conn, name)
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        return PostgresDatabase(conn, url, schema, name, guard)
    except psycopg.Error as err:
        conn.close()
        raise LedgerUnavailable(f"the ledger database {without_password(url)}: {err}") from err
    except BaseException:
        conn.close()
        raise
