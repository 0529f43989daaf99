"""``--rate`` and the limiter, proven on a virtual clock: no window above N, >= 97 % of N.

The loop below never sleeps: when it would wait for a timer it moves its clock
to that timer instead (the idea of aiolimiter's own tests, which patch the
loop's time). ``lateness_s`` makes every wake-up late, as epoll's millisecond
rounding does on a real loop.
"""

from __future__ import annotations

import asyncio
import bisect
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiolimiter import AsyncLimiter

from engine.errors import ConfigError
from engine.submitter.rate import Rate, bucket_shape, make_limiter, parse_rate

T = TypeVar("T")

#: How far the virtual clock moves on every turn of the loop.
TICK_S = 1e-6


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for I/O without blocking and jumps the clock over any wait for a timer."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing scheduled: only I/O (e.g. a worker thread finishing) can wake us.
            return super().select(None)
        events = super().select(0)
        if self.loop is not None:
            # Real time always moves a little; without that, a timer that float rounding
            # puts at "now" (aiolimiter can do that) would be re-armed at "now" forever.
            self.loop.advance(TICK_S)
            if not events and timeout > 0:
                self.loop.advance(timeout + self.loop.lateness_s)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when the loop would otherwise wait."""

    def __init__(self, lateness_s: float = 0.0) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self.lateness_s = lateness_s
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(make: Callable[[], Awaitable[T]], lateness_s: float = 0.0) -> T:
    """Run a coroutine to completion on a fresh virtual-time loop."""

    async def main() -> T:
        return await make()

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(lateness_s)) as runner:
        return runner.run(main())


def max_in_window(starts: list[float], window_s: float) -> int:
    """The most starts in any closed window [t, t + window_s] (worst case starts at a start)."""
    return max(bisect.bisect_right(starts, t + window_s) - i for i, t in enumerate(starts))


async def acquisitions(limiter: AsyncLimiter, workers: int, duration_s: float) -> list[float]:
    """When each acquisition happened, with ``workers`` tasks hammering the limiter."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def worker() -> None:
        while loop.time() < duration_s:
            async with limiter:
                starts.append(loop.time())
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return sorted(s for s in starts if s < duration_s)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1/s", Rate(1, 1.0)),
        ("200/s", Rate(200, 1.0)),
        (" 60 / min ", Rate(60, 60.0)),
        ("100/m", Rate(100, 60.0)),
        ("3000/h", Rate(3000, 3600.0)),
        ("5/SEC", Rate(5, 1.0)),
        ("2.0/s", Rate(2, 1.0)),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "5", "/s", "5/fortnight", "-1/s", "0/s", "1e3/s", "x/s"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--rate"):
        parse_rate(text)


def test_a_fractional_count_is_refused_with_an_exact_equivalent() -> None:
    with pytest.raises(ConfigError, match="30/min"):
        parse_rate("0.5/s")
    with pytest.raises(ConfigError, match="150/h"):
        parse_rate("2.5/min")


def test_rate_prints_as_it_was_written() -> None:
    assert [str(parse_rate(t)) for t in ("7/s", "60/min", "10/h")] == ["7/s", "60/min", "10/h"]


@pytest.mark.parametrize("count", [1, 2, 10, 200, 1000, 10_000, 100_000])
def test_bucket_never_admits_two_windows_worth(count: int) -> None:
    shape = bucket_shape(Rate(count, 1.0))
    assert 1.0 <= shape.capacity < 1.0 + 0.011 * count
    # Capacity + drain over one window stays below count + 1: at most count starts.
    assert shape.capacity + 1.0 / shape.interval_s < count + 1
    # ... and the long-run rate gives up at most 2 % of the count.
    assert 1.0 / shape.interval_s >= 0.98 * count


# --- the window property and the achieved rate, on the virtual clock -----------------------


@pytest.mark.parametrize(
    ("rate", "periods"),
    [
        (Rate(1, 1.0), 120),
        (Rate(3, 1.0), 60),
        (Rate(10, 1.0), 30),
        (Rate(200, 1.0), 5),
        (Rate(60, 60.0), 5),
        (Rate(1000, 3600.0), 3),
        (Rate(10_000, 1.0), 2),
    ],
)
def test_no_window_holds_more_than_n_and_a_long_run_gets_97_percent(
    rate: Rate, periods: int
) -> None:
    duration = rate.period_s * periods
    starts = run_virtual(lambda: acquisitions(make_limiter(rate), 8, duration))
    assert max_in_window(starts, rate.period_s) <= rate.count
    achieved = len(starts) / duration
    assert achieved >= 0.97 * rate.per_second
    assert achieved <= rate.per_second


@pytest.mark.parametrize("count", [10, 200, 1000])
def test_late_timers_do_not_drag_the_rate_down(count: int) -> None:
    """Each wake-up 1 ms late, as on a real loop: the banked room keeps the rate."""
    rate = Rate(count, 1.0)
    starts = run_virtual(lambda: acquisitions(make_limiter(rate), 8, 3.0), lateness_s=0.001)
    assert max_in_window(starts, 1.0) <= count
    assert len(starts) / 3.0 >= 0.97 * count


def test_a_capacity_one_bucket_falls_behind_when_timers_are_late() -> None:
    """Why the limiter banks room: the plain capacity-1 bucket loses ~17 % at 200/s."""
    plain = AsyncLimiter(1, 1.0 / 200 * 1.01)
    starts = run_virtual(lambda: acquisitions(plain, 8, 3.0), lateness_s=0.001)
    assert len(starts) / 3.0 < 0.9 * 200


def test_a_bucket_of_capacity_n_would_burst_past_the_rate() -> None:
    """The check above can fail: aiolimiter's own default shape lets ~2N into a window."""
    bursty = AsyncLimiter(10, 1.0)
    starts = run_virtual(lambda: acquisitions(bursty, 8, 5.0))
    assert max_in_window(starts, 1.0) > 10


def test_the_virtual_clock_jumps_instead_of_sleeping() -> None:
    async def nap() -> Any:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3600)
        return loop.time()

    assert run_virtual(nap) == pytest.approx(3600)
