"""The coordination of many workers through PostgreSQL (engine/ledger/postgres/fleet.py),
against a real server: claims, leases and fencing, reaping, shared limits, one-holder locks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError, LeaseLost, without_password
from engine.ledger.database import LedgerUnavailable
from engine.ledger.postgres.constants import LEASE_MARGIN_S, RENDER_SLOT_WAIT_S
from engine.ledger.postgres.fleet import Fleet, Lease, lease_left, lease_margin
from engine.ledger.postgres.fleet_schema import MIGRATIONS
from engine.ledger.postgres.leases import Renewal, fence_sql

CAMPAIGN = "campaign_spring"


# --- TEST STAND-IN for the store's campaign schema ----------------------------------------
# The real `campaign_<name>` schema (engine/ledger/postgres/schema.py, helper "store") has
# every column of the SQLite ledger's jobs table; this stand-in has the ones the fleet
# reads or writes, with claimed_by and the trigger that frees a claim when a job is pending
# again. Replace it with the store's schema when the branches merge.
async def make_campaign(url: str, schema: str, pending: int, *, others: int = 0) -> None:
    """``schema`` with ``pending`` pending jobs (lines 1..pending, key ``k<line>``), then
    ``others`` already submitted."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            f"""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.jobs (
                key TEXT PRIMARY KEY,
                line BIGINT NOT NULL,
                status TEXT NOT NULL,
                video_id TEXT,
                attempts BIGINT NOT NULL DEFAULT 0,
                error TEXT,
                request_sha256 TEXT,
                body TEXT,
                sent_at DOUBLE PRECISION,
                api TEXT NOT NULL DEFAULT 'v2',
                updated_at TEXT NOT NULL,
                claimed_by TEXT
            );
            CREATE INDEX jobs_line ON {schema}.jobs (line);
            CREATE INDEX jobs_status ON {schema}.jobs (status);
            CREATE FUNCTION {schema}.free_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN NEW.claimed_by := NULL; RETURN NEW; END $$;
            CREATE TRIGGER jobs_free_claim BEFORE UPDATE OF status ON {schema}.jobs
                FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
                EXECUTE FUNCTION {schema}.free_claim();
            """  # type: ignore[arg-type]
        )
        await conn.execute(
            f"INSERT INTO {schema}.jobs (key, line, status, body, request_sha256, updated_at) "  # type: ignore[arg-type]
            "SELECT 'k' || i, i, CASE WHEN i <= %s THEN 'pending' ELSE 'submitted' END, "
            "'{\"n\": ' || i || '}', 'sha' || i, 'now' FROM generate_series(1, %s) AS i",
            (pending, pending + others),
        )


# ------------------------------------------------------------------------------------------


async def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        return await cur.fetchall() if cur.description else []


async def expire(url: str, lease: Lease) -> None:
    """Put ``lease`` past its end on the database's clock, as time would."""
    await sql(
        url,
        "UPDATE heygen_batch.workers SET lease_until = clock_timestamp() - interval '1 s' "
        "WHERE id = %s",
        (lease.worker_id,),
    )


async def fenced(conn: psycopg.AsyncConnection[Any], lease: Lease) -> bool:
    """Run ``lease``'s fence as the store's writer does (its ``?`` marks bound as the
    store binds them): whether the transaction may write."""
    text, params = fence_sql(lease)
    cur = await conn.execute(text.replace("?", "%s"), params)  # type: ignore[arg-type]
    return await cur.fetchone() is not None


async def mark_submitting(url: str, lease: Lease, keys: list[str]) -> bool:
    """What the store's writer does before a send: the fence first, then the jobs, or
    nothing at all when the fence finds no row. Whether the jobs were marked."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        if not await fenced(conn, lease):
            await conn.rollback()
            return False
        await conn.execute(
            f"UPDATE {CAMPAIGN}.jobs SET status = 'submitting' WHERE key = ANY(%s)",
            (keys,),
        )
        await conn.commit()
        return True


async def statuses(url: str) -> dict[str, tuple[str, str | None]]:
    rows = await sql(url, f"SELECT key, status, claimed_by FROM {CAMPAIGN}.jobs")
    return {k: (s, c) for k, s, c in rows}


@pytest.fixture
async def fleet(pg_url: str) -> AsyncIterator[Fleet]:
    async with await Fleet.open(pg_url, pool_size=8) as opened:
        yield opened


# --- claims -------------------------------------------------------------------------------


async def drain(fleet: Fleet, lease: Lease, batch: int) -> list[str]:
    got: list[str] = []
    while claimed := await fleet.claim(lease, CAMPAIGN, batch):
        assert [c.line for c in claimed] == sorted(c.line for c in claimed)
        got += [c.key for c in claimed]
    return got


async def test_concurrent_claims_are_disjoint_and_cover_every_pending_job_once(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 300, others=20)
    leases = [await fleet.register(campaigns=[CAMPAIGN], lease_s=60) for _ in range(8)]
    async with await Fleet.open(pg_url, pool_size=4) as other:
        results = await asyncio.gather(
            *(drain(fleet if i % 2 else other, lease, 7) for i, lease in enumerate(leases))
        )
    every = [key for keys in results for key in keys]
    assert sorted(every) == sorted(f"k{i}" for i in range(1, 301))
    held = await statuses(pg_url)
    for lease, keys in zip(leases, results, strict=True):
        assert all(held[key] == ("pending", lease.worker_id) for key in keys)
    assert all(held[f"k{i}"] == ("submitted", None) for i in range(301, 321))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    jobs=st.integers(0, 60), workers=st.integers(1, 6), batch=st.integers(1, 25), seed=st.randoms()
)
def test_claims_partition_the_pending_jobs_whatever_the_sizes(
    pg_url: str, jobs: int, workers: int, batch: int, seed: Any
) -> None:
    async def scenario() -> None:
        schema = f"campaign_h{seed.randrange(10**9)}"
        await make_campaign(pg_url, schema, jobs)
        async with await Fleet.open(pg_url, pool_size=workers) as fleet:
            leases = [await fleet.register(campaigns=[schema], lease_s=60) for _ in range(workers)]

            async def take(lease: Lease) -> list[str]:
                got: list[str] = []
                while claimed := await fleet.claim(lease, schema, batch):
                    got += [c.key for c in claimed]
                return got

            results = await asyncio.gather(*(take(lease) for lease in leases))
        every = [key for keys in results for key in keys]
        assert sorted(every) == sorted(f"k{i}" for i in range(1, jobs + 1))

    asyncio.run(scenario())


async def test_a_claim_skips_rows_another_transaction_locks(pg_url: str, fleet: Fleet) -> None:
    await make_campaign(pg_url, CAMPAIGN, 20)
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    async with await psycopg.AsyncConnection.connect(pg_url) as locker:
        await locker.execute(f"SELECT 1 FROM {CAMPAIGN}.jobs WHERE line <= 5 FOR UPDATE")
        # A hang guard, not a timing: SKIP LOCKED must not wait for the locker at all.
        claimed = await asyncio.wait_for(fleet.claim(lease, CAMPAIGN, 10), 60)
        assert [c.line for c in claimed] == list(range(6, 16))
        await locker.rollback()
    assert [c.line for c in await fleet.claim(lease, CAMPAIGN, 10)] == [
        1,
        2,
        3,
        4,
        5,
        16,
        17,
        18,
        19,
        20,
    ]


async def test_a_claim_returns_what_a_worker_needs_to_send(pg_url: str, fleet: Fleet) -> None:
    await make_campaign(pg_url, CAMPAIGN, 2)
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    first, second = await fleet.claim(lease, CAMPAIGN, 5)
    assert (first.key, first.line, first.body, first.request_sha256, first.attempts, first.api) == (
        "k1",
        1,
        '{"n": 1}',
        "sha1",
        0,
        "v2",
    )
    assert second.key == "k2"
    with pytest.raises(ValueError, match="did not register"):
        await fleet.claim(lease, "campaign_other", 1)


async def test_a_claim_skips_live_workers_jobs_and_takes_an_expired_ones(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 10)
    a = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    b = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    assert [c.key for c in await fleet.claim(a, CAMPAIGN, 4)] == ["k1", "k2", "k3", "k4"]
    assert [c.line for c in await fleet.claim(b, CAMPAIGN, 100)] == [5, 6, 7, 8, 9, 10]
    assert await fleet.claim(b, CAMPAIGN, 100) == []
    await expire(pg_url, a)
    assert [c.key for c in await fleet.claim(b, CAMPAIGN, 100)] == ["k1", "k2", "k3", "k4"]
    # The expired worker can neither renew, nor claim, nor write.
    assert await fleet.heartbeat(a) is False
    with pytest.raises(LeaseLost):
        await fleet.claim(a, CAMPAIGN, 1)
    assert await mark_submitting(pg_url, a, ["k1"]) is False
    assert (await statuses(pg_url))["k1"] == ("pending", b.worker_id)


async def test_a_claim_takes_jobs_of_a_worker_no_longer_registered(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 2)
    await sql(pg_url, f"UPDATE {CAMPAIGN}.jobs SET claimed_by = 'gone.1.1' WHERE key = 'k1'")
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    assert [c.key for c in await fleet.claim(lease, CAMPAIGN, 5)] == ["k1", "k2"]


async def test_an_expired_workers_write_in_progress_keeps_its_jobs_until_it_commits(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 3)
    a = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    b = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(a, CAMPAIGN, 3)
    async with await psycopg.AsyncConnection.connect(pg_url) as writer:
        assert await fenced(writer, a)
        await expire(pg_url, a)  # a heartbeat-like update: it does not wait for the writer
        assert await fleet.claim(b, CAMPAIGN, 10) == []
        await writer.execute(f"UPDATE {CAMPAIGN}.jobs SET status = 'submitting' WHERE key = 'k1'")
        await writer.commit()
    assert [c.key for c in await fleet.claim(b, CAMPAIGN, 10)] == ["k2", "k3"]


async def test_release_gives_back_only_pending_jobs_the_worker_holds(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 4)
    a = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    b = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(a, CAMPAIGN, 2)
    await fleet.claim(b, CAMPAIGN, 2)
    assert await mark_submitting(pg_url, a, ["k1"])
    await fleet.release(a, CAMPAIGN, ["k1", "k2", "k3"])
    held = await statuses(pg_url)
    assert held["k1"] == ("submitting", a.worker_id)
    assert held["k2"] == ("pending", None)
    assert held["k3"] == ("pending", b.worker_id)


# --- leases, fencing, reaping -------------------------------------------------------------


async def test_each_registration_has_a_new_fence_and_a_lease_the_worker_can_reckon(
    fleet: Fleet,
) -> None:
    before = time.monotonic()
    first = await fleet.register(campaigns=[CAMPAIGN], lease_s=30)
    second = await fleet.register(campaigns=[CAMPAIGN], lease_s=30)
    assert first.fence != second.fence
    assert first.worker_id != second.worker_id
    assert 0 < lease_left(first, time.monotonic()) <= 30
    assert lease_left(first, before + 31) < 0
    renewed_from = first.renewed.at
    assert await fleet.heartbeat(first) is True
    assert first.renewed.at >= renewed_from


def test_the_margin_leaves_room_to_send_between_heartbeats_whatever_the_lease() -> None:
    def lease(seconds: float) -> Lease:
        return Lease("w", 1, seconds, (), Renewal(0.0))

    assert lease_margin(lease(30)) == LEASE_MARGIN_S
    # Just before the next heartbeat (a third of the lease run down) a send may start.
    for seconds in (0.5, 3, 9, 30, 600):
        assert lease_left(lease(seconds), seconds / 3) > lease_margin(lease(seconds)) > 0


async def test_a_stale_fence_matches_no_row(pg_url: str, fleet: Fleet) -> None:
    await make_campaign(pg_url, CAMPAIGN, 1)
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=30)
    stale = Lease(lease.worker_id, lease.fence - 1, lease.lease_s, lease.campaigns, lease.renewed)
    assert await fleet.heartbeat(stale) is False
    assert await mark_submitting(pg_url, stale, ["k1"]) is False
    assert (await statuses(pg_url))["k1"] == ("pending", None)


async def test_reap_makes_an_expired_workers_sends_uncertain_once_and_frees_its_claims(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 10)
    dead = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    live = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(dead, CAMPAIGN, 5)
    await fleet.claim(live, CAMPAIGN, 2)
    assert await mark_submitting(pg_url, dead, ["k1", "k2", "k3"])
    assert await mark_submitting(pg_url, live, ["k6"])
    await expire(pg_url, dead)
    [(until,)] = await sql(
        pg_url,
        "SELECT extract(epoch FROM lease_until)::float8 FROM heygen_batch.workers WHERE id = %s",
        (dead.worker_id,),
    )
    async with await Fleet.open(pg_url, pool_size=2) as other:
        first, second = await asyncio.gather(
            fleet.reap(sent_grace_s=7.0), other.reap(sent_grace_s=7.0)
        )
    assert sorted(first + second) == [(CAMPAIGN, "k1"), (CAMPAIGN, "k2"), (CAMPAIGN, "k3")]
    rows = await sql(pg_url, f"SELECT key, status, claimed_by, sent_at, error FROM {CAMPAIGN}.jobs")
    by_key = {r[0]: r[1:] for r in rows}
    for key in ("k1", "k2", "k3"):
        status, claimed_by, sent_at, error = by_key[key]
        assert (status, claimed_by) == ("uncertain", None)
        assert sent_at == pytest.approx(until + 7.0)
        assert dead.worker_id in error
    assert by_key["k4"][:2] == by_key["k5"][:2] == ("pending", None)
    assert by_key["k6"][:2] == ("submitting", live.worker_id)
    assert by_key["k7"][:2] == ("pending", live.worker_id)
    assert await fleet.heartbeat(dead) is False
    assert await mark_submitting(pg_url, dead, ["k4"]) is False
    assert [w.id for w in await fleet.workers()] == [live.worker_id]
    assert await fleet.reap(sent_grace_s=7.0) == []


async def test_reap_waits_for_no_one_and_skips_a_worker_mid_write(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 2)
    a = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(a, CAMPAIGN, 2)
    async with await psycopg.AsyncConnection.connect(pg_url) as writer:
        assert await fenced(writer, a)
        await expire(pg_url, a)
        assert await asyncio.wait_for(fleet.reap(sent_grace_s=1.0), 60) == []
        await writer.execute(f"UPDATE {CAMPAIGN}.jobs SET status = 'submitting' WHERE key = 'k1'")
        await writer.commit()
    assert await fleet.reap(sent_grace_s=1.0) == [(CAMPAIGN, "k1")]
    assert (await statuses(pg_url))["k2"] == ("pending", None)


async def test_a_campaign_dropped_under_a_dead_worker_does_not_stop_the_reaping(
    pg_url: str, fleet: Fleet
) -> None:
    await make_campaign(pg_url, CAMPAIGN, 2)
    await make_campaign(pg_url, "campaign_gone", 2)
    lease = await fleet.register(campaigns=["campaign_gone", CAMPAIGN], lease_s=60)
    await fleet.claim(lease, CAMPAIGN, 1)
    assert await mark_submitting(pg_url, lease, ["k1"])
    await sql(pg_url, "DROP SCHEMA campaign_gone CASCADE")
    assert [w.holding for w in await fleet.workers()] == [{CAMPAIGN: 1}]
    await expire(pg_url, lease)
    assert await fleet.reap(sent_grace_s=0.0) == [(CAMPAIGN, "k1")]


async def test_retire_frees_claims_and_leaves_no_row(pg_url: str, fleet: Fleet) -> None:
    await make_campaign(pg_url, CAMPAIGN, 3)
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(lease, CAMPAIGN, 3)
    assert await mark_submitting(pg_url, lease, ["k3"])
    assert await fleet.retire(lease) == [(CAMPAIGN, "k3")]
    held = await statuses(pg_url)
    assert held == {"k1": ("pending", None), "k2": ("pending", None), "k3": ("uncertain", None)}
    assert await fleet.workers() == []
    assert await fleet.heartbeat(lease) is False
    assert await fleet.retire(lease) == []


async def test_first_opens_at_once_migrate_once(pg_url: str) -> None:
    fleets = await asyncio.gather(*(Fleet.open(pg_url, pool_size=1) for _ in range(4)))
    for opened in fleets:
        await opened.close()
    versions = await sql(pg_url, "SELECT version FROM heygen_batch.fleet_migrations")
    assert versions == [(i,) for i in range(1, len(MIGRATIONS) + 1)]


async def test_an_unreachable_database_is_named_without_its_password(tmp_path: Any) -> None:
    url = f"postgresql://someone:hunter2@/heygen?host={tmp_path}&connect_timeout=1"
    with pytest.raises(LedgerUnavailable) as err:
        await Fleet.open(url)
    assert "hunter2" not in str(err.value)
    assert f"postgresql://someone@/heygen?host={tmp_path}" in str(err.value)


async def test_a_database_that_refuses_the_shared_tables_is_a_configuration_error(
    pg_url: str,
) -> None:
    # A role of its own may connect, but not create a schema (no CREATE on the database).
    role = f"visitor_{uuid.uuid4().hex[:8]}"
    await sql(pg_url, f"CREATE ROLE {role} LOGIN")
    try:
        with pytest.raises(ConfigError, match="refused the workers' tables"):
            await Fleet.open(pg_url.replace("postgresql://postgres@", f"postgresql://{role}@"))
    finally:
        await sql(pg_url, f"DROP ROLE {role}")


@given(
    password=st.text(
        alphabet=st.characters(blacklist_characters="@/?#&:", blacklist_categories=["Cs", "Cc"]),
        min_size=1,
    ),
    user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
)
def test_without_password_removes_it_from_urls_and_conninfo(password: str, user: str) -> None:
    assert (
        without_password(f"postgresql://{user}:{password}@db.example:5432/heygen")
        == f"postgresql://{user}@db.example:5432/heygen"
    )
    assert (
        without_password(f"postgres://{user}@db/heygen?sslmode=require&password={password}")
        == f"postgres://{user}@db/heygen?sslmode=require"
    )
    if "'" not in password and "\\" not in password and password.strip() == password:
        shown = without_password(f"host=db password='{password}' dbname=heygen")
        assert shown == "host=db dbname=heygen"


# --- limits shared per account ------------------------------------------------------------


async def grant_times(url: str, account: str) -> list[float]:
    rows = await sql(
        url,
        "SELECT extract(epoch FROM granted_at)::float8 FROM heygen_batch.grants "
        "WHERE account = %s ORDER BY granted_at",
        (account,),
    )
    return [t for (t,) in rows]


async def test_concurrent_starts_never_exceed_n_in_any_window(pg_url: str, fleet: Fleet) -> None:
    n, period, wanted = 3, 0.15, 18
    granted = 0
    waits: list[float] = []

    async def ask(caller: Fleet) -> None:
        nonlocal granted
        while granted < wanted:
            wait = await caller.start_allowed("acct", n, period)
            if wait == 0.0:
                granted += 1
            else:
                waits.append(wait)
                await asyncio.sleep(wait)

    # Eight callers on two pools (two workers' worth of connections), one account.
    async with await Fleet.open(pg_url, pool_size=4) as other:
        await asyncio.gather(*(ask(caller) for caller in [fleet, other] * 4))
    times = await grant_times(pg_url, "acct")
    assert len(times) == granted >= wanted
    # The grants' own timestamps: the (i+n)-th grant is at least a period after the i-th.
    assert all(later - earlier >= period for earlier, later in zip(times, times[n:], strict=False))
    assert waits
    assert all(0 < w <= period for w in waits)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(1, 4), period=st.floats(0.02, 0.1), callers=st.integers(1, 6))
def test_any_rate_holds_in_every_window(pg_url: str, n: int, period: float, callers: int) -> None:
    account = f"acct-{n}-{period}-{callers}"

    async def scenario() -> None:
        async with await Fleet.open(pg_url, pool_size=callers) as fleet:

            async def ask() -> None:
                granted = 0
                while granted <= n:
                    wait = await fleet.start_allowed(account, n, period)
                    granted += wait == 0
                    await asyncio.sleep(wait)

            await asyncio.gather(*(ask() for _ in range(callers)))

    asyncio.run(scenario())
    times = asyncio.run(grant_times(pg_url, account))
    assert len(times) == callers * (n + 1)
    assert all(later - earlier >= period for earlier, later in zip(times, times[n:], strict=False))


async def test_a_full_window_says_how_long_until_its_oldest_grant_leaves(
    pg_url: str, fleet: Fleet
) -> None:
    for _ in range(2):
        assert await fleet.start_allowed("acct", 2, 600) == 0.0
    wait = await fleet.start_allowed("acct", 2, 600)
    assert 590 < wait <= 600
    # Another account is told apart; a looser rate on the same account is held to the
    # stricter one its other caller asked for, until that caller stops asking.
    assert await fleet.start_allowed("other", 2, 600) == 0.0
    assert 590 < await fleet.start_allowed("acct", 3, 600) <= 600
    await sql(
        pg_url,
        "UPDATE heygen_batch.rates SET held_until = clock_timestamp() - interval '1 s' "
        "WHERE account = 'acct' AND n = 2",
    )
    assert await fleet.start_allowed("acct", 3, 600) == 0.0
    assert 590 < await fleet.start_allowed("acct", 3, 600) <= 600


async def test_a_stricter_rate_holds_for_a_caller_told_to_wait_past_its_periods(
    pg_url: str, fleet: Fleet
) -> None:
    """A caller waiting out a long pause keeps its rate in force for the others."""
    await fleet.pause("acct", 60)
    assert 50 < await fleet.start_allowed("acct", 1, 1) <= 60  # the 1/s caller waits
    await sql(pg_url, "UPDATE heygen_batch.limits SET paused_until = NULL")
    assert await fleet.start_allowed("acct", 100, 1) == 0.0
    assert await fleet.start_allowed("acct", 100, 1) > 0.0


async def test_a_pause_holds_every_caller_of_that_account_only(pg_url: str, fleet: Fleet) -> None:
    await fleet.pause("acct", 120)
    await fleet.pause("acct", 1)  # a shorter pause does not cut a longer one short
    async with await Fleet.open(pg_url, pool_size=1) as other:
        for caller in (fleet, other):
            assert 100 < await caller.start_allowed("acct", 100, 1) <= 120
        assert await other.start_allowed("free", 100, 1) == 0.0
    assert await grant_times(pg_url, "acct") == []
    await fleet.pause("acct", 600)
    assert 500 < await fleet.start_allowed("acct", 100, 1) <= 600


async def test_max_rendering_grants_only_while_a_slot_is_free(pg_url: str, fleet: Fleet) -> None:
    async def start(key: str) -> float:
        return await fleet.start_allowed(
            "acct", 100, 1, max_rendering=3, campaign=CAMPAIGN, key=key
        )

    results = await asyncio.gather(*(start(f"k{i}") for i in range(10)))
    assert sorted(results) == [0.0] * 3 + [RENDER_SLOT_WAIT_S] * 7
    holders = [f"k{i}" for i, wait in enumerate(results) if wait == 0.0]
    assert sorted(s.key for s in await fleet.rendering("acct")) == sorted(holders)
    # A job holding a slot starts again without a second one; a freed slot is taken.
    assert await start(holders[0]) == 0.0
    assert await start("k99") == RENDER_SLOT_WAIT_S
    await fleet.slot_video("acct", CAMPAIGN, holders[1], "vid-1")
    await fleet.free_slot("acct", CAMPAIGN, holders[2])
    assert await start("k99") == 0.0
    slots = {s.key: s for s in await fleet.rendering("acct")}
    assert sorted(slots) == sorted([holders[0], holders[1], "k99"])
    assert slots[holders[1]].video_id == "vid-1"
    assert slots["k99"].video_id is None
    assert all(s.campaign == CAMPAIGN for s in slots.values())
    # Other accounts have slots of their own; no cap, no slot needed.
    assert (
        await fleet.start_allowed("other", 100, 1, max_rendering=1, campaign=CAMPAIGN, key="k1")
        == 0.0
    )
    assert await fleet.start_allowed("acct", 100, 1) == 0.0
    with pytest.raises(ValueError, match="campaign and key"):
        await fleet.start_allowed("acct", 1, 1, max_rendering=2)


# --- one holder per account ---------------------------------------------------------------


async def test_a_role_admits_one_holder_per_account_while_its_lease_is_in_force(
    pg_url: str, fleet: Fleet
) -> None:
    a = await fleet.register(campaigns=[], lease_s=60)
    b = await fleet.register(campaigns=[], lease_s=60)
    async with await Fleet.open(pg_url, pool_size=1) as other:
        async with fleet.reconciler("acct", a) as held:
            assert held is True
            async with other.reconciler("acct", b) as second:
                assert second is False
            async with other.reconciler("another", b) as elsewhere:
                assert elsewhere is True
            async with other.poller("acct", b) as poller:
                assert poller is True
            # Its connections cut (a hung host's, say), the holder keeps the role while
            # its lease is in force ...
            await sql(
                pg_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            async with other.reconciler("acct", b) as while_leased:
                assert while_leased is False
            # ... and loses it to the next asker once its lease has ended.
            await expire(pg_url, a)
            async with other.reconciler("acct", b) as after_expiry:
                assert after_expiry is True
                # A worker whose lease is lost takes no role, even a free one.
                async with fleet.poller("other", a) as lost:
                    assert lost is False
        # Released at the block's end: free for the next asker.
        c = await fleet.register(campaigns=[], lease_s=60)
        async with fleet.reconciler("acct", c) as freed:
            assert freed is True


async def test_a_stopped_holders_role_is_taken_once_its_lease_ends(
    pg_url: str, fleet: Fleet
) -> None:
    """A holder that never leaves its block (stopped, killed) keeps the role no longer
    than its lease, whether or not it was reaped."""
    a = await fleet.register(campaigns=[], lease_s=60)
    b = await fleet.register(campaigns=[], lease_s=60)
    stuck = fleet.poller("acct", a)
    assert await stuck.__aenter__() is True
    async with fleet.poller("acct", b) as before:
        assert before is False
    await expire(pg_url, a)
    await fleet.reap(sent_grace_s=0)
    async with fleet.poller("acct", b) as after:
        assert after is True
    [(holders,)] = await sql(pg_url, "SELECT count(*) FROM heygen_batch.roles")
    assert holders == 0


# --- operations -------------------------------------------------------------------------------


async def test_workers_lists_who_holds_what(pg_url: str, fleet: Fleet) -> None:
    await make_campaign(pg_url, CAMPAIGN, 6)
    await make_campaign(pg_url, "campaign_autumn", 2)
    a = await fleet.register(campaigns=[CAMPAIGN, "campaign_autumn"], lease_s=60)
    b = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await fleet.claim(a, CAMPAIGN, 2)
    await fleet.claim(a, "campaign_autumn", 5)
    await fleet.claim(b, CAMPAIGN, 3)
    assert await mark_submitting(pg_url, b, ["k3"])
    await sql(pg_url, f"UPDATE {CAMPAIGN}.jobs SET status = 'submitted' WHERE key = 'k4'")
    rows = await fleet.workers()
    assert [r.id for r in rows] == [a.worker_id, b.worker_id]
    first, second = rows
    assert first.campaigns == (CAMPAIGN, "campaign_autumn")
    assert first.holding == {CAMPAIGN: 2, "campaign_autumn": 2}
    assert second.holding == {CAMPAIGN: 2}  # one sent, one being sent: only the latter held
    assert first.pid == second.pid > 0
    assert first.host
    assert 0 <= first.heartbeat_age_s < 60
    assert first.started_at <= first.heartbeat_at < first.lease_until


async def test_connections_the_server_dropped_are_replaced(pg_url: str, fleet: Fleet) -> None:
    lease = await fleet.register(campaigns=[CAMPAIGN], lease_s=60)
    await sql(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert await fleet.heartbeat(lease) is True
