"""``--rate`` parsing and the limiter that enforces it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from aiolimiter import AsyncLimiter

from engine.errors import ConfigError, EngineError
from engine.submitter.constants import RATE_SAFETY_MARGIN, RATE_SLACK_SHARE, RATE_TIMER_SLACK_S

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``count`` request starts in any window of ``period_s`` seconds."""

    count: int
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period_s, f"{self.period_s:g}s")
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text.lower())
    if not match or match.group(2) not in _PERIODS:
        raise ConfigError(f"--rate '{text}' is not a rate; write it like 2/s, 100/min or 3000/h.")
    count = float(match.group(1))
    period = _PERIODS[match.group(2)]
    if count <= 0:
        raise ConfigError(f"--rate '{text}' must be above zero.")
    if not count.is_integer():
        # "At most 2.5 starts in any second" has no meaning; a longer window says it exactly.
        longer = {1.0: ("min", 60.0), 60.0: ("h", 60.0)}.get(period)
        hint = f", e.g. {count * longer[1]:g}/{longer[0]}" if longer else ""
        raise ConfigError(f"--rate '{text}': give a whole number of requests per window{hint}.")
    return Rate(int(count), period)


@dataclass(frozen=True)
class BucketShape:
    """A leaky bucket: room for ``capacity`` starts, one drained every ``interval_s``."""

    capacity: float
    interval_s: float


def bucket_shape(rate: Rate) -> BucketShape:
    """The bucket that never lets more than ``rate.count`` starts into any window.

    A start needs one free unit of room and the bucket drains one unit every
    ``interval_s``. A window of length W opens with at most ``capacity`` units
    free and drains ``W / interval_s`` more, so it holds at most
    ``capacity + W / interval_s`` starts. With spare room s (capacity 1 + s)::

        interval_s = period_s * (1 + RATE_SAFETY_MARGIN) / (count - s)

    so every window shorter than ``period_s * (1 + margin)`` holds at most
    ``count`` starts: the margin absorbs jitter between our starts and the
    service's clock.

    Why spare room at all: a bucket of capacity 1 lets one start through per
    timer, and each timer fires up to a millisecond late; the delays add up (at
    200/s a capacity-1 bucket reaches about 80 % of the rate). With
    ``s = RATE_TIMER_SLACK_S / (period_s / count)`` a late waiter uses the room
    banked meanwhile. s is at most ``RATE_SLACK_SHARE * count``, so the long-run
    rate ``(count - s) / (1 + margin)`` per window is at least 98 % of the rate.
    (A bucket of capacity N would let 2N - 1 starts into one window.)
    """
    n = rate.count
    spare = min(RATE_SLACK_SHARE * n, RATE_TIMER_SLACK_S * n / rate.period_s)
    interval = rate.period_s * (1.0 + RATE_SAFETY_MARGIN) / (n - spare)
    return BucketShape(capacity=1.0 + spare, interval_s=interval)


class StartRefused(EngineError):
    """A ``Limiter`` will grant no more starts (a worker that lost its lease, or the
    database that grants them): the pool sends nothing more."""


class Limiter(Protocol):
    """Where a request takes its start: ``make_limiter``'s AsyncLimiter on one machine,
    or the workers' shared one (engine.scaleout.limiter) on a PostgreSQL ledger.
    ``acquire`` returns when a start is granted, or raises ``StartRefused`` when none
    ever will be; ``has_capacity`` says whether it would return without suspending."""

    def has_capacity(self, amount: float = 1) -> bool: ...

    async def acquire(self, amount: float = 1) -> None: ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def make_limiter(rate: Rate) -> AsyncLimiter:
    """The shared limiter: ``async with`` it right before each request start."""
    shape = bucket_shape(rate)
    # aiolimiter drains max_rate per time_period, so this pair drains one per interval.
    return AsyncLimiter(shape.capacity, shape.capacity * shape.interval_s)
