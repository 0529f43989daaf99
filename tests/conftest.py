"""Shared fixtures: a zero-backoff switch, the fixed aioresponses, paths to the demo."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from engine.ledger import open as open_
from engine.ledger.database import Guard
from engine.ledger.store import Ledger
from engine.submitter import retry
from tests import pg_cluster

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "jobs" / "demo.csv"
DEMO_TEMPLATE = ROOT / "jobs" / "demo-template.json"


class MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp
    3.14 requires (pnuckowski/aioresponses#289); a request it answers was never
    written, so a writer that reports no output is the truth."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class FixedAioresponses(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", MockedResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def http() -> Iterator[FixedAioresponses]:
    """Fake HTTP at the transport: every request is answered (or refused) by the test."""
    with FixedAioresponses() as mocked:
        yield mocked


@pytest.fixture
def no_backoff() -> Iterator[None]:
    retry.set_testing(True)
    yield
    retry.set_testing(False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server's URL: ``HEYGEN_TEST_PG_URL`` (``.ci/run``, ``make pg``), else a
    throwaway cluster started here (see ``tests/pg_cluster.py``) and stopped at the end.
    Without PostgreSQL the test is skipped, saying why, except where ``HEYGEN_REQUIRE_PG``
    is set (CI): there it fails."""
    given = os.environ.get(pg_cluster.URL_VARIABLE)
    if given:
        yield given
        return
    folder = pg_cluster.fresh_folder()
    try:
        url = pg_cluster.start(folder)
    except (OSError, subprocess.CalledProcessError, RuntimeError) as err:
        pg_cluster.stop(folder)
        reason = f"no PostgreSQL server could be started here: {err}"
        if os.environ.get(pg_cluster.REQUIRE_VARIABLE):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield url
    finally:
        pg_cluster.stop(folder)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """The URL of a new, empty database on ``pg_server``, dropped after the test."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(pg_server)
    params["dbname"] = name
    yield _as_url(make_conninfo(**params))
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_url(conninfo: str) -> str:
    """``conninfo`` (``key=value ...``) as a ``postgresql://`` URL, the spelling users give."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    dbname = params.pop("dbname")
    user = params.pop("user", "")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"postgresql://{user}@/{dbname}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class LedgerSpec(open_.LedgerSpec):
    """A ledger as ``--ledger`` (and ``--campaign``) name it, for the store-parametrised
    tests: every ledger opened through it is closed when the test ends (a connection a
    test left open would otherwise warn when collected)."""

    opened: list[Ledger] = field(default_factory=list, compare=False, repr=False)

    def open(
        self, *, create: bool = True, key_env: str | None = None, guard: Guard | None = None
    ) -> Ledger:
        ledger = super().open(create=create, key_env=key_env, guard=guard)
        self.opened.append(ledger)
        return ledger

    def close_all(self) -> None:
        for ledger in self.opened:
            ledger.close()

    def args(self) -> list[str]:
        """The command-line options naming this ledger."""
        return ["--ledger", str(self.where)] + (
            ["--campaign", self.campaign] if self.campaign else []
        )

    def other(self, name: str) -> LedgerSpec:
        """Another ledger of the same store: a file beside this one, or another campaign."""
        if self.file is not None:
            return LedgerSpec(self.file.with_name(f"{name}.db"), opened=self.opened)
        return LedgerSpec(self.where, name, opened=self.opened)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> LedgerSpec:
    """One contract, both stores: each test using it runs on a SQLite file and on a
    PostgreSQL campaign (a fresh database per test)."""
    spec: LedgerSpec = request.getfixturevalue(f"{request.param}_store")
    return spec


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[LedgerSpec]:
    spec = LedgerSpec(tmp_path / "l.db")
    yield spec
    spec.close_all()


@pytest.fixture
def postgres_store(pg_url: str) -> Iterator[LedgerSpec]:
    spec = LedgerSpec(pg_url, "test")
    yield spec
    spec.close_all()
