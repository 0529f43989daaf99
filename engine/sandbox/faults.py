"""Seeded fault decisions and the server-side rate limit.

Decisions are drawn in request arrival order from one ``random.Random(seed)``, so
the same config and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections import deque
from dataclasses import dataclass

from aiohttp import web

from engine.sandbox.config import SandboxConfig

SERVER_ERROR_STATUSES = (500, 502, 503, 504)


class Outcome(enum.Enum):
    OK = "ok"
    RATE_LIMITED = "429"
    SERVER_ERROR = "5xx"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    latency_s: float = 0.0
    status: int = 200


NO_FAULT = Decision(Outcome.OK)


class FaultDecider:
    """Draws, per generate request, its latency and which fault (if any) it meets."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)

    def decide(self) -> Decision:
        c = self._config
        if not c.injects_faults:
            return NO_FAULT
        rng = self._rng
        latency_ms = c.latency_ms
        if c.latency_spread_ms:
            latency_ms += rng.uniform(-c.latency_spread_ms, c.latency_spread_ms)
        latency_s = max(latency_ms, 0.0) / 1000
        # The faults are checked in a fixed order so one seed gives one sequence; the
        # first one drawn wins.
        if c.rate_429 and rng.random() < c.rate_429:
            return Decision(Outcome.RATE_LIMITED, latency_s, 429)
        if c.rate_5xx and rng.random() < c.rate_5xx:
            return Decision(Outcome.SERVER_ERROR, latency_s, rng.choice(SERVER_ERROR_STATUSES))
        if c.drop_before and rng.random() < c.drop_before:
            return Decision(Outcome.DROP_BEFORE, latency_s)
        if c.drop_after and rng.random() < c.drop_after:
            return Decision(Outcome.DROP_AFTER, latency_s)
        return Decision(Outcome.OK, latency_s)


class SlidingWindowLimiter:
    """At most ``limit`` accepted starts in any window of ``period`` seconds.

    A sliding window (not a token bucket) because the engine's ``--rate`` promises
    exactly this: no burst above N in any window. Rejected requests do not take a
    place in the window, as with a real limiter that refuses before doing work.
    """

    def __init__(self, limit: int, period: float) -> None:
        self._period = period
        self._starts: deque[float] = deque(maxlen=limit)

    def try_acquire(self, now: float) -> float | None:
        """Take a place at ``now``; ``None`` when accepted, else seconds until one frees."""
        starts = self._starts
        if len(starts) == starts.maxlen and now - starts[0] < self._period:
            return starts[0] + self._period - now
        starts.append(now)
        return None


class RenderSlots:
    """Renders in progress, by the moment each ends: the service's real limit.

    ``None`` capacity counts renders (for the most seen at once) but refuses none.
    """

    def __init__(self, capacity: int | None) -> None:
        self._capacity = capacity
        self._ends: list[float] = []
        #: The most renders that were in progress at once.
        self.most = 0

    def busy(self, now: float) -> int:
        ends = self._ends
        while ends and ends[0] <= now:
            heapq.heappop(ends)
        return len(ends)

    def wait(self, now: float) -> float | None:
        """``None`` when a render may start at ``now``; else seconds until the oldest ends."""
        if self._capacity is None or self.busy(now) < self._capacity:
            return None
        return self._ends[0] - now

    def start(self, now: float, ends: float) -> None:
        if ends > now:
            heapq.heappush(self._ends, ends)
        self.most = max(self.most, self.busy(now))


def format_retry_after(seconds: float) -> str:
    """Whole seconds as an integer, otherwise a short decimal (``0.25``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection with no answer: the drop faults, for either API."""
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp discards a response written to a closed transport, so the client sees a
    # disconnect with no status line, never this 200.
    return web.Response()
