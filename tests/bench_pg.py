"""``make bench``'s PostgreSQL figures: a throwaway cluster (tests/pg_cluster.py), the
sandbox in its own process, every worker in its own.

- ``pg_submissions_per_s_1`` / ``_4`` and ``pg_worker_speedup`` (goal: 4 workers at least
  2 x one) against a zero-latency sandbox, with a rate far above what they reach: there
  every process competes for the same cores (the workers, the sandbox, the server), so
  on a small machine this measures CPU per job more than scale-out;
- ``pg_latency_bound_per_s_1`` / ``_4`` and ``pg_latency_bound_speedup``: the same with
  the service answering in 100 ms and 4 requests in flight per worker, so one worker is
  held back by the service as a real one is by the network, and more workers add sends;
- ``pg_shared_rate_max_in_window`` under a shared ``--rate`` (goal: never above N), with
  four workers and the sandbox's own limit set to N;
- ``pg_enqueue_s`` and ``pg_enqueue_peak_rss_mb`` for 1,000,000 rows.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from tests import pg_cluster
from tests.bench_data import KEY_COLUMN, TEMPLATE, write_contacts
from tests.bench_procs import CLI, CLIENT_ENV, measure, progress, sandbox

Figures = dict[str, float | int | str]

SPEED_ROWS = 6_000
LATENCY_ROWS = 1_200
LATENCY_MS = 100
LATENCY_CONCURRENCY = 4
SHARED_RATE = 40
SHARED_ROWS = 400
WORKER_CONCURRENCY = 32


def _enqueue_args(jobs: Path, url: str, campaign: str) -> list[str]:
    return [
        *CLI,
        "enqueue",
        str(jobs),
        "--ledger",
        url,
        "--template",
        str(TEMPLATE),
        "--key-column",
        KEY_COLUMN,
        "--campaign",
        campaign,
        "--json",
    ]


def _workers(
    url: str,
    campaign: str,
    base_url: str,
    n: int,
    rate: str,
    concurrency: int = WORKER_CONCURRENCY,
) -> float:
    """Start ``n`` workers on ``campaign`` together; seconds until the last one is done."""
    env = {**os.environ, **CLIENT_ENV}
    args = [
        *CLI,
        "worker",
        "--ledger",
        url,
        "--campaign",
        campaign,
        "--base-url",
        base_url,
        "--rate",
        rate,
        "--concurrency",
        str(concurrency),
        "--no-progress",
    ]
    started = time.perf_counter()
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL) for _ in range(n)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"a worker exited with {codes}")
    return time.perf_counter() - started


def _enqueue(jobs: Path, url: str, campaign: str) -> None:
    done = measure(_enqueue_args(jobs, url, campaign))
    if done.returncode:
        raise RuntimeError(f"enqueue exited with {done.returncode}")


def bench_pg(
    work: Path,
    big: Path | None,
    big_rows: int,
    max_in_window: Callable[[Sequence[float], float], int],
) -> Figures:
    """Every figure above, on a cluster of its own with PostgreSQL's durable defaults."""
    folder = pg_cluster.fresh_folder()
    url = pg_cluster.start(folder, durable=True)
    figures: Figures = {}
    try:
        jobs = write_contacts(work / "pg.csv", SPEED_ROWS)
        with sandbox() as sb:
            rates = {}
            for n in (1, 4):
                progress(f"PostgreSQL: {SPEED_ROWS} jobs, {n} worker(s), zero latency")
                campaign = f"speed{n}"
                _enqueue(jobs, url, campaign)
                sb.reset()
                took = _workers(url, campaign, sb.base_url, n, "100000/s")
                rates[n] = SPEED_ROWS / took
                figures[f"pg_submissions_per_s_{n}"] = round(rates[n], 1)
            figures["pg_worker_speedup"] = round(rates[4] / rates[1], 2)
        slow = write_contacts(work / "pg-slow.csv", LATENCY_ROWS)
        with sandbox("--latency-ms", str(LATENCY_MS)) as sb:
            rates = {}
            for n in (1, 4):
                progress(f"PostgreSQL: {LATENCY_ROWS} jobs, {n} worker(s), {LATENCY_MS} ms")
                campaign = f"slow{n}"
                _enqueue(slow, url, campaign)
                took = _workers(url, campaign, sb.base_url, n, "100000/s", LATENCY_CONCURRENCY)
                rates[n] = LATENCY_ROWS / took
                figures[f"pg_latency_bound_per_s_{n}"] = round(rates[n], 1)
            figures["pg_latency_bound_speedup"] = round(rates[4] / rates[1], 2)
        progress(f"PostgreSQL: {SHARED_ROWS} jobs, 4 workers sharing {SHARED_RATE}/s")
        shared = write_contacts(work / "pg-shared.csv", SHARED_ROWS)
        with sandbox("--rate-limit", f"{SHARED_RATE}/s") as sb:
            _enqueue(shared, url, "shared")
            _workers(url, "shared", sb.base_url, 4, f"{SHARED_RATE}/s")
            seen = sb.counters()
        figures["pg_shared_rate"] = SHARED_RATE
        figures["pg_shared_rate_max_in_window"] = max_in_window(seen["request_times"], 1.0)
        figures["pg_shared_rate_violations"] = seen["violations"]
        if big is not None:
            progress(f"PostgreSQL: enqueue {big_rows} rows")
            done = measure(_enqueue_args(big, url, "million"))
            if done.returncode:
                raise RuntimeError(f"enqueue exited with {done.returncode}")
            figures["pg_enqueue_rows"] = big_rows
            figures["pg_enqueue_s"] = round(done.wall_s, 1)
            figures["pg_enqueue_rows_per_s"] = round(big_rows / done.wall_s)
            figures["pg_enqueue_peak_rss_mb"] = round(done.peak_rss_mb, 1)
            with psycopg.connect(url) as conn:
                stored = conn.execute("SELECT count(*) FROM campaign_million.jobs").fetchone()
            figures["pg_enqueue_stored"] = int(stored[0]) if stored else 0
    finally:
        pg_cluster.stop(folder)
    return figures
