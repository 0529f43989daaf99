"""``heygen-batch worker``: processes that send a PostgreSQL campaign together, against a
standalone sandbox: one video per job, no duplicate, a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from engine.cli import cli
from tests.processes import counters, environment, standalone_sandbox
from tests.test_enqueue import enqueue, jobs_of
from tests.test_submission_sandbox import write_jobs


def worker_args(url: str, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "engine",
        "worker",
        "--ledger",
        url,
        "--base-url",
        base_url,
        "--no-progress",
        "--json",
        *extra,
    ]


def start_worker(url: str, base_url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        worker_args(url, base_url, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # No grace: the sandbox lists a video the moment it exists.
        env=environment(HEYGEN_API_KEY="sk-any", HEYGEN_BATCH_RECONCILE_GRACE_S="0"),
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    try:
        out, err = process.communicate(timeout=120)  # guards against a hang only
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, json.loads(out.splitlines()[-1]), err


def made_once_each(base_url: str, jobs: int) -> None:
    seen = counters(base_url)
    assert seen["duplicates"] == 0
    assert seen["created"] == jobs


def settled(url: str, campaign: str = "jobs") -> dict[str, str]:
    return {key: row[0] for key, row in jobs_of(url, campaign).items()}


def test_one_worker_sends_an_enqueued_campaign_once_per_job(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 30)
    enqueue(jobs, pg_url)
    with standalone_sandbox() as base_url:
        code, summary, err = finish(start_worker(pg_url, base_url, "--rate", "100/s"))
        assert code == 0, err
        assert summary["this_run"]["submitted"] == 30
        assert summary["campaigns"]["jobs"]["submitted"] == 30
        made_once_each(base_url, 30)
        # Enqueued again, nothing is left to send: the next worker sends nothing.
        assert enqueue(jobs, pg_url)["added"] == 0
        code, summary, err = finish(start_worker(pg_url, base_url, "--rate", "100/s"))
        assert (code, summary["this_run"]["submitted"]) == (0, 0), err
        made_once_each(base_url, 30)
    assert set(settled(pg_url).values()) == {"submitted"}
    with psycopg.connect(pg_url) as conn:
        videos = conn.execute("SELECT count(DISTINCT video_id) FROM campaign_jobs.jobs").fetchone()
        workers = conn.execute("SELECT count(*) FROM heygen_batch.workers").fetchone()
    assert videos == (30,)
    assert workers == (0,)  # each retired


def test_two_workers_share_a_campaign_with_no_duplicate(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 60)
    enqueue(jobs, pg_url)
    with standalone_sandbox("--latency-ms", "20") as base_url:
        workers = [
            start_worker(pg_url, base_url, "--rate", "100/s", "--concurrency", "4")
            for _ in range(2)
        ]
        results = [finish(w) for w in workers]
        for code, _, err in results:
            assert code == 0, err
        sent = [summary["this_run"]["submitted"] for _, summary, _ in results]
        assert sum(sent) == 60
        made_once_each(base_url, 60)
    assert set(settled(pg_url).values()) == {"submitted"}


def test_sigterm_drains_a_worker(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 40)
    enqueue(jobs, pg_url)
    with standalone_sandbox("--latency-ms", "300") as base_url:
        worker = start_worker(pg_url, base_url, "--rate", "20/s", "--concurrency", "4")
        deadline = time.monotonic() + 30
        while counters(base_url)["requests"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        code, _, err = finish(worker)
        assert code == 130, err
        statuses = settled(pg_url)
        seen = counters(base_url)
        assert seen["duplicates"] == 0
        assert set(statuses.values()) <= {"submitted", "pending", "uncertain"}
        assert "pending" in statuses.values()  # it really stopped early
        made = seen["created_by_callback_id"]
        for key, (status, _, _, callback_id, _, claimed_by) in jobs_of(pg_url).items():
            if status == "submitted":
                assert callback_id in made
            if status == "pending":
                assert callback_id not in made
                assert claimed_by is None, key  # every claim not sent is released
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM heygen_batch.workers").fetchone() == (0,)

        # Another worker finishes the campaign: nothing sent twice.
        code, _summary, err = finish(start_worker(pg_url, base_url, "--rate", "100/s"))
        assert code == 0, err
        made_once_each(base_url, 40)
    assert set(settled(pg_url).values()) == {"submitted"}


def test_a_worker_on_a_ledger_file_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine", "worker", "--ledger", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        env=environment(HEYGEN_API_KEY="sk-any"),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "heygen-batch run" in result.stderr


def test_a_worker_reads_the_key_from_the_campaigns_variable(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 2)
    missing = "TEAM_B_KEY"
    enqueue(jobs, pg_url, "--key-env", missing)
    with standalone_sandbox() as base_url:
        code, summary, _err = finish(start_worker(pg_url, base_url))
        assert code == 2
        assert missing in summary["reason"]
        assert counters(base_url)["requests"] == 0


def test_a_campaign_another_key_made_videos_of_is_refused_to_this_one(
    tmp_path: Path, pg_url: str
) -> None:
    enqueue(write_jobs(tmp_path / "jobs.jsonl", 3), pg_url)
    with standalone_sandbox() as base_url:
        code, _, err = finish(start_worker(pg_url, base_url, "--rate", "100/s"))
        assert code == 0, err
        enqueue(write_jobs(tmp_path / "jobs.jsonl", 5), pg_url)  # two more rows
        other = subprocess.run(
            worker_args(pg_url, base_url, "--rate", "100/s"),
            capture_output=True,
            text=True,
            timeout=120,
            env=environment(HEYGEN_API_KEY="sk-other", HEYGEN_BATCH_RECONCILE_GRACE_S="0"),
        )
        assert other.returncode == 2
        said = " ".join((other.stdout + other.stderr).split())
        assert "another API key" in said
        made_once_each(base_url, 3)
        # A rotated key of the same account: the fix the refusal gives exists.
        assert "heygen-batch poll --rebind" in said, said
        rebind = ["poll", "--ledger", pg_url, "--campaign", "jobs", "--base-url", base_url]
        env = environment(HEYGEN_API_KEY="sk-other")
        poll = subprocess.run(
            [sys.executable, "-m", "engine", *rebind, "--rebind"], capture_output=True, env=env
        )
        assert poll.returncode == 0, poll.stderr
        code, summary, err = finish(
            subprocess.Popen(
                worker_args(pg_url, base_url, "--rate", "100/s"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        assert (code, summary["this_run"]["submitted"]) == (0, 2), err
        made_once_each(base_url, 5)


def test_two_workers_keep_to_a_shared_max_rendering(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 12)
    enqueue(jobs, pg_url)
    with standalone_sandbox("--render-seconds", "0.5", "--render-slots", "3") as base_url:
        workers = [
            start_worker(pg_url, base_url, "--rate", "100/s", "--max-rendering", "3")
            for _ in range(2)
        ]
        for code, _, err in [finish(w) for w in workers]:
            assert code == 0, err
        seen = counters(base_url)
        assert seen["max_rendering"] <= 3
        assert seen["slot_refusals"] == 0  # never one create beyond the cap
        made_once_each(base_url, 12)
    assert set(settled(pg_url).values()) == {"submitted"}


def test_run_on_a_database_enqueues_and_sends_in_one_process(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "spring.jsonl", 8)
    args = ["run", str(jobs), "--key-column", "callback_id", "--ledger", pg_url, "--json"]
    first = CliRunner().invoke(cli, [*args, "--sandbox"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.splitlines()[-1])
    assert (summary["new"], summary["this_run"]["submitted"]) == (8, 8)
    assert summary["counts"]["submitted"] == 8
    assert set(settled(pg_url, "spring").values()) == {"submitted"}
    # Options a database run does not take are refused before anything is done.
    refused = CliRunner().invoke(cli, [*args, "--sandbox", "--limit", "2"])
    assert refused.exit_code == 2
    assert "--limit" in refused.output


def test_status_lists_the_workers_serving_a_database(tmp_path: Path, pg_url: str) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    enqueue(jobs, pg_url)
    with standalone_sandbox() as base_url:
        # --follow: the campaign done, the worker waits for more instead of exiting.
        worker = start_worker(pg_url, base_url, "--rate", "100/s", "--follow")
        try:
            deadline = time.monotonic() + 30
            while counters(base_url)["created"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            shown = CliRunner().invoke(cli, ["status", "--ledger", pg_url, "--json"])
            assert shown.exit_code == 0, shown.output
            summary = json.loads(shown.stdout)
            assert summary["counts"]["pending"] == 0
            (listed,) = summary["workers"]
            assert (listed["pid"], listed["campaigns"]) == (worker.pid, ["jobs"])
            assert worker.poll() is None  # still serving
        finally:
            worker.send_signal(signal.SIGTERM)
        code, _, err = finish(worker)
        assert code == 130, err
    shown = CliRunner().invoke(cli, ["status", "--ledger", pg_url])
    assert "Workers: none registered." in shown.output


def test_a_database_out_of_reach_exits_75_having_sent_nothing(tmp_path: Path) -> None:
    with standalone_sandbox() as base_url:
        # Port 1 on loopback: nothing listens, the connection is refused at once.
        code, summary, err = finish(
            start_worker("postgresql://heygen:s3cret@127.0.0.1:1/heygen", base_url)
        )
        assert code == 75
        assert "cannot" in summary["reason"]
        assert "s3cret" not in err + summary["reason"]
        assert counters(base_url)["requests"] == 0


def test_a_worker_killed_mid_request_costs_no_duplicate_and_no_job(
    tmp_path: Path, pg_url: str
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 40)
    enqueue(jobs, pg_url)
    with standalone_sandbox("--latency-ms", "300") as base_url:
        fast = ("--rate", "40/s", "--lease", "3s")
        victim = start_worker(pg_url, base_url, *fast)
        deadline = time.monotonic() + 30
        while counters(base_url)["requests"] < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.kill()  # requests in flight, jobs marked ahead: all left to the others
        victim.communicate()
        code, summary, err = finish(start_worker(pg_url, base_url, *fast))
        assert code == 0, err
        # Its jobs in flight were reaped uncertain, then found (or proven absent and sent).
        assert summary["this_run"]["reconciled_found"] + summary["this_run"]["reconciled_absent"]
        made_once_each(base_url, 40)
    assert set(settled(pg_url).values()) == {"submitted"}


def test_a_database_that_refuses_the_url_is_a_configuration_error_not_a_wait(
    tmp_path: Path, pg_url: str
) -> None:
    """A database or user the server does not have is fixed in --ledger, not by waiting:
    exit 2 (a supervisor restarting on 75 would retry it forever), on every command."""
    no_database = pg_url.replace("/t_", "/missing_t_", 1)
    no_role = pg_url.replace("postgresql://postgres@", "postgresql://nobody:s3cret@", 1)
    jobs = write_jobs(tmp_path / "jobs.jsonl", 2)
    for url, told in ((no_database, "does not exist"), (no_role, "nobody")):
        for args in (
            ["worker", "--ledger", url, "--sandbox"],
            ["enqueue", str(jobs), "--ledger", url, "--campaign", "c"],
            ["export", "--ledger", url],
        ):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 2, (args, result.output)
            assert told in result.output
            assert "s3cret" not in result.output


def test_a_campaign_whose_key_is_not_here_is_skipped_not_fatal(tmp_path: Path, pg_url: str) -> None:
    """Serving every campaign, a worker without a campaign's key variable serves the rest
    and warns; named with --campaign, that campaign is a configuration error."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    enqueue(jobs, pg_url, "--campaign", "ours")
    enqueue(jobs, pg_url, "--campaign", "theirs", "--key-env", "THEIR_HEYGEN_KEY")
    with standalone_sandbox() as base_url:
        code, summary, err = finish(start_worker(pg_url, base_url, "--rate", "50/s"))
        assert code == 0, err
        assert "theirs" in err
        assert "THEIR_HEYGEN_KEY" in err
        made_once_each(base_url, 5)
        code, summary, err = finish(start_worker(pg_url, base_url, "--campaign", "theirs"))
        assert code == 2
        assert "THEIR_HEYGEN_KEY" in summary["reason"]
    assert {row[0] for row in jobs_of(pg_url, "ours").values()} == {"submitted"}
    assert {row[0] for row in jobs_of(pg_url, "theirs").values()} == {"pending"}


def test_status_marks_a_worker_silent_past_its_lease(tmp_path: Path, pg_url: str) -> None:
    from engine.ledger.postgres.fleet import Fleet, Lease

    async def two_workers() -> tuple[Lease, Lease]:
        fleet = await Fleet.open(pg_url)
        try:
            return (
                await fleet.register(campaigns=["campaign_jobs"], lease_s=30),
                await fleet.register(campaigns=["campaign_jobs"], lease_s=30),
            )
        finally:
            await fleet.close()

    enqueue(write_jobs(tmp_path / "jobs.jsonl", 2), pg_url)
    alive, silent = asyncio.run(two_workers())
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE heygen_batch.workers SET heartbeat_at = heartbeat_at - interval '1 hour', "
            "lease_until = lease_until - interval '1 hour' WHERE id = %s",
            (silent.worker_id,),
        )
    shown = CliRunner().invoke(cli, ["status", "--ledger", pg_url])
    lines = {line.split()[0]: line for line in shown.output.splitlines() if "heartbeat" in line}
    assert "lease expired" in lines[silent.worker_id]
    assert "lease expired" not in lines[alive.worker_id]
    listed = CliRunner().invoke(cli, ["status", "--ledger", pg_url, "--json"])
    expired = {w["id"]: w["lease_expired"] for w in json.loads(listed.stdout)["workers"]}
    assert expired == {alive.worker_id: False, silent.worker_id: True}
