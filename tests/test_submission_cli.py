"""``heygen-batch run`` as a user runs it, against a standalone sandbox: exit codes and output."""

from __future__ import annotations

import json
import subprocess
from contextlib import closing
from pathlib import Path

from engine.ledger.store import Ledger
from tests.processes import counters, environment, standalone_sandbox
from tests.test_signals import run_args
from tests.test_submission_sandbox import write_jobs

RIGHT_KEY = "sk-right-5ecret-key-abcdef"
WRONG_KEY = "sk-wrong-5ecret-key-123456"


def run(*args: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=environment(HEYGEN_API_KEY=key),
        timeout=60,
        check=False,
    )


def test_a_refused_key_exits_3_without_printing_it(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 20)
    with standalone_sandbox("--latency-ms", "20", key=RIGHT_KEY) as base_url:
        result = run(
            *run_args(jobs, base_url, "--rate", "100/s", "--concurrency", "4"), key=WRONG_KEY
        )
        seen = counters(base_url)
    assert result.returncode == 3, result.stderr
    assert "refused the API key" in result.stderr
    for secret in (RIGHT_KEY, WRONG_KEY):
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert seen["created"] == 0
    assert seen["requests"] <= 4  # the refusal stopped the run at once
    with closing(Ledger(tmp_path / "jobs.ledger.db")) as ledger:
        assert ledger.counts()["pending"] == 20


def test_the_right_key_goes_through_and_json_prints_only_the_summary(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 10)
    with standalone_sandbox(key=RIGHT_KEY) as base_url:
        result = run(*run_args(jobs, base_url, "--rate", "100/s", "--json"), key=RIGHT_KEY)
        seen = counters(base_url)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["submitted"] == 10
    assert seen["created"] == 10
    assert RIGHT_KEY not in result.stdout + result.stderr


def test_no_progress_line_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 10)
    with standalone_sandbox() as base_url:
        args = [a for a in run_args(jobs, base_url, "--rate", "100/s") if a != "--no-progress"]
        result = run(*args, key="sk-any")
    assert result.returncode == 0, result.stderr
    assert "in flight" not in result.stderr
    assert "\x1b[" not in result.stderr  # no terminal control codes either
    assert "This run: 10 submitted" in result.stdout


def test_limit_caps_each_run(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 7)
    with standalone_sandbox() as base_url:
        args = run_args(jobs, base_url, "--rate", "100/s", "--limit", "3", "--json")
        first = json.loads(run(*args, key="sk-any").stdout)
        second = json.loads(run(*args, key="sk-any").stdout)
        seen = counters(base_url)
    assert (first["counts"]["submitted"], first["held_by_limit"]) == (3, 4)
    assert (second["counts"]["submitted"], second["held_by_limit"]) == (6, 1)
    assert seen["requests"] == 6


def test_a_wrong_base_url_stops_the_run_and_fails_no_job(tmp_path: Path) -> None:
    """A 404 from the create endpoint is the address's fault, not the job's: exit 2, all pending."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 6)
    with standalone_sandbox() as base_url:
        run = subprocess.run(
            run_args(jobs, base_url + "/api", "--rate", "100/s", "--json"),
            capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-any"),
            timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "--base-url" in run.stderr
        assert json.loads(run.stdout)["counts"]["pending"] == 6
        again = subprocess.run(
            run_args(jobs, base_url, "--rate", "100/s", "--json"),
            capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-any"),
            timeout=60, check=False,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["submitted"] == 6


def test_test_videos_and_real_ones_never_share_a_ledger(tmp_path: Path) -> None:
    """A preview with --test-videos, then the real campaign: on the same ledger the real
    run would take every row for done and no contact would get a real video."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    own_ledger = tmp_path / "jobs.real.ledger.db"
    with standalone_sandbox() as base_url:
        preview = run(*run_args(jobs, base_url, "--rate", "100/s", "--test-videos"), key="sk-any")
        real = run(*run_args(jobs, base_url, "--rate", "100/s"), key="sk-any")
        refused_at = counters(base_url)["requests"]
        real_dry = run(*run_args(jobs, base_url, "--dry-run"), key="sk-any")
        separate = run(
            *run_args(jobs, base_url, "--rate", "100/s", "--json", "--ledger", str(own_ledger)),
            key="sk-any",
        )
        test_again = run(
            *run_args(jobs, base_url, "--test-videos", "--dry-run", "--ledger", str(own_ledger)),
            key="sk-any",
        )
        seen = counters(base_url)
    assert preview.returncode == 0, preview.stderr
    assert real.returncode == 2
    assert "holds test videos" in real.stderr
    assert f"--ledger {own_ledger}" in real.stderr
    assert refused_at == 5  # the refused run sent nothing
    assert real_dry.returncode == 2
    assert json.loads(separate.stdout)["counts"]["submitted"] == 5
    assert test_again.returncode == 2
    assert "holds real videos" in test_again.stderr
    assert seen["created"] == 10  # five test videos, then five real ones


def test_a_test_run_that_sent_nothing_leaves_the_ledger_to_either_kind(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    with standalone_sandbox() as base_url:
        nothing = run(
            *run_args(jobs, base_url, "--rate", "100/s", "--test-videos", "--limit", "0"),
            key="sk-any",
        )
        real = run(*run_args(jobs, base_url, "--rate", "100/s", "--json"), key="sk-any")
    assert nothing.returncode == 0, nothing.stderr
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["counts"]["submitted"] == 3


def test_jobs_keyed_by_their_body_may_share_a_ledger_across_kinds(tmp_path: Path) -> None:
    """Without --key-column a test body and a real one hash to different keys."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    with standalone_sandbox() as base_url:
        args = [a for a in run_args(jobs, base_url, "--rate", "100/s") if a != "callback_id"]
        args.remove("--key-column")
        preview = run(*args, "--test-videos", key="sk-any")
        real = run(*args, "--json", key="sk-any")
        seen = counters(base_url)
    assert preview.returncode == 0, preview.stderr
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["new"] == 3
    assert seen["created"] == 6
