"""The campaigns of one PostgreSQL database: ``heygen_batch.campaigns``, one schema each."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import psycopg

from engine.errors import ConfigError
from engine.ledger.database import Row
from engine.ledger.postgres.constants import (
    CAMPAIGN_NAME_MAX,
    CAMPAIGN_SCHEMA_PREFIX,
    SHARED_SCHEMA,
)
from engine.ledger.postgres.schema import CAMPAIGN_MIGRATIONS, SHARED_MIGRATIONS, migrate

DEFAULT_KEY_ENV = "HEYGEN_API_KEY"
NAME_RULE = f"[a-z0-9_]{{1,{CAMPAIGN_NAME_MAX}}}"
_NAME = re.compile(NAME_RULE)
_OTHER = re.compile(r"[^a-z0-9_]")
_KEY_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Hex digits of the whole stem's digest that end a long stem's campaign name.
_STEM_HASH_HEX = 8


def campaign_name(text: str) -> str:
    """``text`` lowered, when it is a campaign name. Raises ConfigError naming the rule."""
    name = text.lower()
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"'{text}' is not a campaign name: use letters, digits and _ only, "
            f"{CAMPAIGN_NAME_MAX} at most (--campaign)."
        )
    return name


def name_from_jobs(jobs: str) -> str:
    """The default campaign of a jobs file: its stem lowered, other characters as ``_``.
    A stem longer than a name may be keeps its start and ends in ``_`` and a digest of
    the whole stem, so two files differing only past the cut (``..._emea``, ``..._apac``)
    are two campaigns, as they would be two ledger files.
    Raises ConfigError for standard input (``-``), which has no name."""
    if jobs == "-":
        raise ConfigError("Reading jobs from standard input needs --campaign NAME.")
    name = _OTHER.sub("_", Path(jobs).stem.lower())
    if len(name) > CAMPAIGN_NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:_STEM_HASH_HEX]
        name = f"{name[: CAMPAIGN_NAME_MAX - _STEM_HASH_HEX - 1]}_{digest}"
    return campaign_name(name or "_")


def schema_of(name: str) -> str:
    return CAMPAIGN_SCHEMA_PREFIX + name


def prepare_database(conn: psycopg.Connection[Row]) -> None:
    """The shared schema, made or brought up to date (safe when many open it at once)."""
    migrate(conn, SHARED_SCHEMA, SHARED_MIGRATIONS)


def campaigns(conn: psycopg.Connection[Row]) -> list[str]:
    """Every campaign of the database, by name (none in a database never prepared)."""
    made = conn.execute("SELECT to_regclass(%s)", (f"{SHARED_SCHEMA}.campaigns",)).fetchone()
    if made is None or made[0] is None:
        return []
    rows = conn.execute(f"SELECT name FROM {SHARED_SCHEMA}.campaigns ORDER BY name")
    return [str(row[0]) for row in rows]


def key_env(conn: psycopg.Connection[Row], name: str) -> str | None:
    """The environment variable campaign ``name``'s API key is read from (None: no such
    campaign)."""
    row = conn.execute(
        f"SELECT key_env FROM {SHARED_SCHEMA}.campaigns WHERE name = %s", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def create_campaign(conn: psycopg.Connection[Row], name: str, key_env: str | None = None) -> str:
    """Register campaign ``name`` (if new) and bring its schema up to date; its schema's
    name. ``key_env``: the variable holding its API key (given: recorded, replacing an
    earlier one; None: ``HEYGEN_API_KEY`` for a new campaign, unchanged otherwise).
    Raises ConfigError for a bad name or variable name."""
    name = campaign_name(name)
    if key_env is not None and not _KEY_ENV.fullmatch(key_env):
        raise ConfigError(f"'{key_env}' is not an environment variable's name (--key-env).")
    schema = schema_of(name)
    conn.execute(
        f"INSERT INTO {SHARED_SCHEMA}.campaigns (name, schema_name, key_env) "
        "VALUES (%s, %s, %s) ON CONFLICT (name) DO "
        + ("UPDATE SET key_env = excluded.key_env" if key_env is not None else "NOTHING"),
        (name, schema, key_env or DEFAULT_KEY_ENV),
    )
    migrate(conn, schema, CAMPAIGN_MIGRATIONS)
    return schema


def existing_campaign(conn: psycopg.Connection[Row], given: str | None, where: str) -> str:
    """The campaign a command on an existing ledger works on: ``given`` (which must
    exist), else the database's only campaign. Raises ConfigError naming the campaigns
    there are (``where``: the database, for the message)."""
    names = campaigns(conn)
    if given is not None:
        name = campaign_name(given)
        if name in names:
            return name
        raise ConfigError(f"{where} has no campaign '{name}'{_listed(names)}.")
    if len(names) == 1:
        return names[0]
    if not names:
        raise ConfigError(
            f"{where} holds no campaign yet: load one first (`heygen-batch enqueue` or "
            "`heygen-batch run` with this --ledger)."
        )
    raise ConfigError(
        f"{where} holds several campaigns: choose one with --campaign{_listed(names)}."
    )


def _listed(names: list[str]) -> str:
    return f" (it holds: {', '.join(names)})" if names else " (it holds none yet)"
