"""``--rate`` parsing and the limiter that enforces it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from engine.errors import ConfigError
from engine.submitter.constants import RATE_SAFETY_MARGIN

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most ``count`` request starts in any window of ``period_s`` seconds."""

    count: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period_s, f"{self.period_s}s")
        return f"{self.count:g}/{unit}"


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text.lower())
    if not match or match.group(2) not in _PERIODS:
        raise ConfigError(f"--rate '{text}' is not a rate; write it like 2/s, 100/min or 3000/h.")
    count = float(match.group(1))
    if count <= 0:
        raise ConfigError(f"--rate '{text}' must be above zero.")
    return Rate(count, _PERIODS[match.group(2)])


def make_limiter(rate: Rate) -> AsyncLimiter:
    """A leaky bucket of capacity one, draining one start every period/count.

    A bucket of capacity N would let N starts through at once and then N more
    as it drains within the same window: up to 2N-1 in one window. Capacity one
    spaces starts evenly, so no window of ``period_s`` ever holds more than
    ``count``; the safety margin absorbs the jitter the service sees.
    """
    return AsyncLimiter(1, rate.period_s / rate.count * (1.0 + RATE_SAFETY_MARGIN))
