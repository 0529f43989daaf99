"""What the ledger keeps for the report: one row per request, written with the batches;
render ends and video seconds from status; and the figures read back from them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.errors import ConnectFailed, RateLimited
from engine.ledger import render_writes, statements
from engine.ledger.render_writes import RenderExtras
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.report.facts import _group_label, percentile, read_facts
from engine.submitter.items import SubmitItem
from tests.conftest import FixedAioresponses, LedgerSpec
from tests.test_pool_decisions import GENERATE, ok, pool

pytestmark = pytest.mark.usefixtures("no_backoff")


def attempt_rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(Ledger(path)) as ledger:
        return ledger.query(
            "SELECT key, attempt, outcome, code, retry_after_s, latency_ms, started_at "
            "FROM attempts ORDER BY attempt"
        )


def spoken(key: str, words: int) -> SubmitItem:
    text = " ".join(["word"] * words)
    body = {"callback_id": key, "video_inputs": [{"voice": {"type": "text", "input_text": text}}]}
    return SubmitItem(key, body, f"sha-{key}")


async def test_each_request_is_kept_with_its_outcome(
    tmp_path: Path, http: FixedAioresponses
) -> None:
    limited = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}
    http.post(GENERATE, status=429, headers={"Retry-After": "0"}, payload=limited)
    http.post(GENERATE, status=503, payload={"error": {"code": "busy", "message": "m"}})
    refused = aiohttp.client_reqrep.ConnectionKey("heygen.test", 80, False, True, None, None, None)
    http.post(GENERATE, exception=aiohttp.ClientConnectorError(refused, OSError(111, "refused")))
    http.post(GENERATE, payload=ok(1))
    async with pool(tmp_path, jobs=1) as p:
        assert await p.submitter.submit(spoken("job-0", 150)) == "submitted"
    rows = attempt_rows(p.path)
    # A 429 spends none of the job's attempts: the request after it has its number.
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("job-0", 1, "http 429", "rate_limit_exceeded", 0.0),
        ("job-0", 1, "http 503", "busy", None),
        ("job-0", 2, ConnectFailed.__name__, None, None),
        ("job-0", 3, "ok", None, None),
    ]
    assert all(r[5] >= 0 and r[6] > 1e9 for r in rows)
    # 150 words at 150 a minute: the estimate is kept with the mark.
    with closing(Ledger(p.path)) as ledger:
        estimated = ledger.query("SELECT estimated_seconds FROM jobs WHERE key = 'job-0'")[0][0]
    assert estimated == pytest.approx(60.0)


async def test_attempt_rows_go_after_the_ordered_statements_of_their_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[list[str]] = []
    real = Ledger.transaction

    def spy(self: Ledger, work: Iterable[tuple[str, Sequence[Any]]]) -> None:
        work = list(work)
        batches.append([sql.split()[0] + " " + sql.split()[2] for sql, _ in work])
        real(self, work)

    monkeypatch.setattr(Ledger, "transaction", spy)
    path = tmp_path / "l.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction([statements.insert_job("a", 1, "pending", {}, "s", None)])
    batches.clear()
    writer = BatchWriter(path)
    writer.start()
    writer.write(statements.mark_outcome("a", "failed", 1, "x"))
    writer.note(render_writes.record_attempt("a", 1, 1.0, 0.1, None))
    writer.write(statements.mark_outcome("a", "failed", 2, "y"))
    await writer.close()
    # The two updates stay one run for executemany; the attempt follows them.
    assert batches == [["UPDATE SET", "UPDATE SET", "INSERT attempts"]]
    assert len(attempt_rows(path)) == 1


def test_a_render_end_is_kept_from_the_first_status_that_shows_it(store: LedgerSpec) -> None:
    with closing(store.open()) as ledger:
        ledger.transaction([statements.insert_job("a", 1, "submitted", {}, "s", None)])

        def read() -> tuple[Any, ...]:
            (found,) = ledger.query("SELECT render_ended_at, duration_s FROM jobs WHERE key = 'a'")
            return tuple(found)

        ledger.transaction([render_writes.render_update("a", "processing", None, None, None)])
        assert read() == (None, None)
        ledger.transaction(
            [
                render_writes.render_update(
                    "a", "completed", "u", "t", None, RenderExtras(duration_s=12.5)
                )
            ]
        )
        ended, seconds = read()
        assert ended is not None
        assert seconds == 12.5
        ledger.transaction([render_writes.render_update("a", "completed", "u2", "t", None)])
        assert read() == (ended, 12.5)


def test_waits_add_up_the_time_the_pool_stood_paused(store: LedgerSpec) -> None:
    attempt = render_writes.record_attempt
    with closing(store.open()) as ledger:
        ledger.transaction(
            [
                statements.insert_job(k, n, "submitted", {}, "s", None)
                for n, k in enumerate("abc", 1)
            ]
            + [
                # Two 429s whose pauses overlap (10-40 and 20-50), a third apart (100-105).
                attempt("a", 1, 10.0, 0.0, _limited(30.0)),
                attempt("b", 1, 20.0, 0.0, _limited(30.0)),
                attempt("c", 1, 100.0, 0.0, _limited(5.0)),
                attempt("a", 2, 52.0, 0.5, None),
                attempt("b", 2, 60.0, 0.5, None),
                attempt("c", 2, 105.0, 0.5, None),
            ]
        )
        facts = read_facts(ledger)
    assert facts.waits.rate_limited == 3
    assert facts.waits.asked_total_s == 65.0
    assert facts.waits.asked_max_s == 30.0
    assert facts.waits.paused_s == pytest.approx(45.0)
    assert facts.waits.waited_max_s == pytest.approx(42.0)  # a: answered at 10, sent at 52
    assert facts.retries == 3
    assert facts.retried_jobs == 3
    assert facts.outcomes == {"http 429": 3, "ok": 3}


def _limited(seconds: float) -> RateLimited:
    return RateLimited(429, None, "rate_limit_exceeded", "slow down", seconds)


def test_like_errors_fall_together() -> None:
    assert _group_label("HTTP 400 invalid_parameter: avatar not found") == (
        "HTTP 400 invalid_parameter"
    )
    assert _group_label("render failed: render_failed: Simulated failure") == "render_failed"
    assert _group_label("gave up after 6 attempts: HTTP 503: busy") == "gave up after 6 attempts"
    assert _group_label("title: column 'first_name' is empty; other: x") == (
        "title: column 'first_name' is empty"
    )


def test_percentiles() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([float(n) for n in range(1, 101)], 0.5) == pytest.approx(50.5)


def test_a_ledger_without_timings_says_so(store: LedgerSpec) -> None:
    with closing(store.open()) as ledger:
        ledger.transaction([statements.insert_job("a", 1, "submitted", {}, "s", None)])
        facts = read_facts(ledger)
    assert facts.statuses["submitted"] == 1
    assert facts.renders["not polled"] == 1
    assert any("No request timings" in note for note in facts.notes)
