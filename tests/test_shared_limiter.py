"""The workers' shared limiter (engine/scaleout/limiter.py) against a fake gate: grants
as the database gives them, no start on a lease about to end, none without the database."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import EngineError, LeaseLost
from engine.ledger.database import LedgerUnavailable, unreachable
from engine.ledger.postgres.constants import LEASE_MARGIN_S
from engine.ledger.postgres.fleet import Lease
from engine.ledger.postgres.leases import Renewal
from engine.scaleout.limiter import SharedLimiter
from engine.submitter.constants import SHARED_RATE_MARGIN
from engine.submitter.rate import Rate, StartRefused, bucket_shape


class Gate:
    """Answers each ask with the next of ``waits`` (0.0: granted), each ask taking
    ``slow`` of ``clock``'s seconds."""

    def __init__(
        self, *waits: float, down: bool = False, clock: Clock | None = None, slow: float = 0.0
    ) -> None:
        self.waits = list(waits)
        self.asked: list[tuple[str, int, float]] = []
        self.down = down
        self.clock = clock
        self.slow = slow

    async def start_allowed(self, account: str, n: int, period_s: float) -> float:
        self.asked.append((account, n, period_s))
        if self.clock is not None:
            self.clock.now += self.slow
        if self.down:
            raise unreachable("postgresql://u:secret@db/x", "connection refused")
        return self.waits.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(
    gate: Gate, clock: Clock, lease_s: float = 30.0
) -> tuple[SharedLimiter, list[EngineError]]:
    stopped: list[EngineError] = []
    lease = Lease("host.1.1", 1, lease_s, ("campaign_x",), Renewal(clock.now))
    return (
        SharedLimiter(gate, "acct", Rate(10, 1.0), lease, stopped.append, clock.sleep, clock),
        stopped,
    )


def test_a_start_waits_as_the_database_says_then_goes() -> None:
    gate, clock = Gate(0.25, 2.5, 0.0), Clock()
    shared, stopped = limiter(gate, clock)
    assert not shared.has_capacity()  # every start asks the database
    asyncio.run(shared.acquire())
    # Long waits are slept in pieces, so the lease is looked at in between.
    assert clock.slept == [0.25, 1.0]
    assert len(gate.asked) == 3
    assert not stopped
    # One start per bucket interval: never more than the rate in any window, no burst.
    account, n, period = gate.asked[0]
    assert (account, n) == ("acct", 1)
    spacing = bucket_shape(Rate(10, 1.0)).interval_s * (1 + SHARED_RATE_MARGIN)
    assert period == pytest.approx(spacing)
    assert 10 * period > 1.0


def test_no_start_with_less_than_the_margin_of_lease_left() -> None:
    clock = Clock()
    gate = Gate(0.0)
    shared, stopped = limiter(gate, clock, lease_s=30.0)
    clock.now += 30.0 - LEASE_MARGIN_S + 0.5
    with pytest.raises(StartRefused):
        asyncio.run(shared.acquire())
    assert gate.asked == []  # not even asked
    assert isinstance(stopped[0], LeaseLost)


def test_a_grant_that_came_too_late_for_the_lease_is_not_used() -> None:
    clock = Clock()
    gate = Gate(0.0, clock=clock, slow=1.0)
    shared, stopped = limiter(gate, clock, lease_s=30.0)
    clock.now += 30.0 - LEASE_MARGIN_S - 0.5
    with pytest.raises(StartRefused):
        asyncio.run(shared.acquire())
    assert isinstance(stopped[0], LeaseLost)


def test_a_database_out_of_reach_grants_nothing_and_stops_the_worker() -> None:
    gate, clock = Gate(down=True), Clock()
    shared, stopped = limiter(gate, clock)
    with pytest.raises(StartRefused):
        asyncio.run(shared.acquire())
    assert isinstance(stopped[0], LedgerUnavailable)
    assert "secret" not in str(stopped[0])
