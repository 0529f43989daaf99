"""What a ``worker`` is told (``WorkerOptions``) and what it reports (``WorkerReport``:
its summary, exit code and reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import AbortRun, EngineError, LeaseLost, WrongAddress
from engine.ledger.postgres.constants import DEFAULT_LEASE_S
from engine.submitter.constants import DEFAULT_GRACE_S, DEFAULT_MAX_WAIT_S
from engine.submitter.control import LongWait
from engine.submitter.rate import Rate
from engine.submitter.stats import PoolStats


@dataclass
class WorkerOptions:
    url: str
    #: Campaign names; empty: every campaign of the database.
    campaigns: tuple[str, ...]
    base_url: str | None
    sandbox: bool
    rate: Rate
    concurrency: int = 8
    max_attempts: int = 6
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    lease_s: float = DEFAULT_LEASE_S
    grace_s: float = DEFAULT_GRACE_S
    follow: bool = False
    progress: bool = False
    #: --max-rendering: at most this many videos of an account rendering at once.
    max_rendering: int | None = None


@dataclass
class WorkerReport:
    ledger: str
    worker_id: str | None = None
    #: Campaign name -> its jobs by status, at the end.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    stats: PoolStats = field(default_factory=PoolStats)
    reconciled_found: int = 0
    reconciled_absent: int = 0
    #: Why the worker stopped sending: its lease lost, or the database out of reach.
    stopped: EngineError | None = None
    interrupted: bool = False
    abort: AbortRun | None = None
    wait: LongWait | None = None
    elapsed_s: float = 0.0

    @property
    def uncertain(self) -> int:
        return sum(c.get("uncertain", 0) for c in self.counts.values())

    @property
    def exit_code(self) -> int:
        if self.stopped is not None:
            return 75
        if self.interrupted:
            return 130
        if self.abort is not None:
            return 2 if isinstance(self.abort, WrongAddress) else 3
        if self.wait is not None:
            return 75
        return 1 if self.uncertain else 0

    @property
    def reason(self) -> str | None:
        if isinstance(self.stopped, LeaseLost):
            return (
                f"{self.stopped}. The worker was paused, or cut off from the database, for "
                "longer than its --lease: others took its jobs, and those it had in flight "
                "are reconciled. Start it again (a longer --lease for a slow host)."
            )
        if self.stopped is not None:
            return (
                f"{self.stopped}. The worker stopped sending; its jobs in flight are "
                "reconciled by the other workers (or the next one started). Start it again "
                "once the database can be reached."
            )
        if self.interrupted:
            return "Interrupted: requests in flight were let finish or recorded uncertain."
        if self.wait is not None:
            return self.wait.message
        if self.abort is None and self.uncertain:
            return (
                f"{self.uncertain} jobs are still uncertain: no reconcile could prove "
                "them made or absent yet; `heygen-batch reconcile` settles them later."
            )
        return None
