"""The sandbox's render slots and sustained 429 (issue 14): a create beyond the renders in
progress is refused with 429 ``rate_limit_exceeded`` and a ``Retry-After`` until the oldest
render ends; the counters say how often and the most renders seen at once. Fake clock."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli.sandbox_cmd import sandbox as sandbox_command
from engine.sandbox import SandboxConfig
from engine.sandbox.faults import RenderSlots
from tests.test_sandbox import FakeClock, get, make_body, post, serve


async def test_a_create_beyond_the_slots_waits_for_the_oldest_render() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_slots=2, render_seconds=10) as (sb, session):
        first, _, _ = await post(session, make_body("cb-1"))
        clock.now += 4
        second, _, _ = await post(session, make_body("cb-2"))
        status, body, headers = await post(session, make_body("cb-3"))
        assert (first, second, status) == (200, 200, 429)
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert headers["Retry-After"] == "6"  # the first render ends 10 s after it began
        clock.now += 6
        again, _, _ = await post(session, make_body("cb-3"))
        assert again == 200
        _, view = await get(session, "/_sandbox/counters")
    assert view["slot_refusals"] == 1
    assert view["max_rendering"] == 2
    assert view["created"] == 3
    assert sb.state.counters.created_by_callback_id == {"cb-1": 1, "cb-2": 1, "cb-3": 1}


async def test_without_a_cap_the_most_renders_at_once_are_still_counted() -> None:
    clock = FakeClock()
    async with serve(clock=clock, render_seconds=5) as (_, session):
        for n in range(3):
            assert (await post(session, make_body(f"cb-{n}")))[0] == 200
        clock.now += 5
        assert (await post(session, make_body("cb-9")))[0] == 200
        _, view = await get(session, "/_sandbox/counters")
    assert (view["max_rendering"], view["slot_refusals"]) == (3, 0)


async def test_a_sustained_429_refuses_every_create_for_its_first_seconds() -> None:
    clock = FakeClock()
    options = {"sustained_429_s": 30, "retry_after_s": 2}
    async with serve(clock=clock, **options) as (_, session):
        answers = []
        for _ in range(16):
            status, _, headers = await post(session, make_body("cb-1"))
            answers.append((status, headers.get("Retry-After")))
            clock.now += 2
        _, view = await get(session, "/_sandbox/counters")
    assert answers[:15] == [(429, "2")] * 15
    assert answers[15][0] == 200
    assert view["sustained_refusals"] == 15
    assert view["created"] == 1


def test_render_slots_release_in_order_of_their_end() -> None:
    slots = RenderSlots(2)
    slots.start(0.0, 10.0)
    slots.start(1.0, 3.0)
    assert slots.wait(2.0) == pytest.approx(1.0)  # the shorter one ends first
    assert slots.wait(3.0) is None
    assert slots.busy(10.0) == 0
    assert slots.most == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [({"render_slots": 0}, "render_slots"), ({"sustained_429_s": -1}, "sustained_429_s")],
)
def test_bad_values_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxConfig(**options)  # type: ignore[arg-type]


def test_the_flags_are_on_the_command_line() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert "--render-slots" in result.output
    assert "--sustained-429-s" in result.output
    refused = CliRunner().invoke(sandbox_command, ["--render-slots", "0"])
    assert refused.exit_code == 2
