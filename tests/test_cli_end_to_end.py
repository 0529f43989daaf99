"""The CLI as a user runs it: a subprocess against the built-in sandbox."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_crash_resume import campaign_id as campaign_of


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEN_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_demo_campaign_submits_every_row_and_exports_it(tmp_path: Path) -> None:
    ledger = tmp_path / "demo.db"
    result = cli(
        "run",
        str(DEMO_CSV),
        "--template",
        str(DEMO_TEMPLATE),
        "--ledger",
        str(ledger),
        "--sandbox",
        "--rate",
        "50/s",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["submitted"] == 12
    assert summary["new"] == 12

    out = tmp_path / "results.csv"
    exported = cli("export", "--ledger", str(ledger), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with DEMO_CSV.open(encoding="utf-8", newline="") as f:
        contacts = list(csv.DictReader(f))
    assert [r["email"] for r in rows] == [c["email"] for c in contacts]
    assert all(r["status"] == "submitted" and len(r["video_id"]) == 32 for r in rows)
    assert len({r["video_id"] for r in rows}) == 12
    header = list(rows[0])
    assert header[: len(contacts[0])] == list(contacts[0])
    assert header[len(contacts[0]) :] == [
        "key",
        "line",
        "status",
        "video_id",
        "video_status",
        "video_url",
        "thumbnail_url",
        "attempts",
        "error",
        "api",
        "callback_id",
        "video_page_url",
        "file_path",
    ]
    assert {r["api"] for r in rows} == {"v2"}
    assert all(r["callback_id"] == f"{campaign_of(ledger)}:{r['key']}" for r in rows)


def test_second_run_sends_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "demo.db"
    args = (
        "run",
        str(DEMO_CSV),
        "--template",
        str(DEMO_TEMPLATE),
        "--ledger",
        str(ledger),
        "--sandbox",
        "--rate",
        "50/s",
        "--json",
    )
    assert cli(*args).returncode == 0
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_done"] == 12
    assert summary["new"] == 0
    assert summary["this_run"]["submitted"] == 0


def test_run_without_key_or_sandbox_names_both(tmp_path: Path) -> None:
    result = cli(
        "run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--ledger", str(tmp_path / "x.db")
    )
    assert result.returncode == 2
    assert "HEYGEN_API_KEY" in result.stderr
    assert "--sandbox" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_dry_run_writes_and_sends_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "demo.db"
    result = cli(
        "run",
        str(DEMO_CSV),
        "--template",
        str(DEMO_TEMPLATE),
        "--ledger",
        str(ledger),
        "--dry-run",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new"] == 12
    assert summary["estimate"]["videos"] == 12
    assert summary["estimate"]["credits"] > 0
    assert not ledger.exists()


def test_poll_with_the_sandbox_finds_the_videos_a_sandbox_run_created(tmp_path: Path) -> None:
    ledger = tmp_path / "demo.db"
    ran = cli("run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--ledger", str(ledger),
              "--sandbox", "--rate", "50/s", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    polled = cli("poll", "--ledger", str(ledger), "--sandbox", "--until-done", "--json")
    assert polled.returncode == 0, polled.stderr
    summary = json.loads(polled.stdout)
    assert summary["completed"] == 12
    out = tmp_path / "results.jsonl"
    assert cli("export", "--ledger", str(ledger), "-o", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["video_status"] == "completed" and r["video_url"] for r in rows)


def test_the_v3_demo_runs_polls_and_exports_with_the_built_in_sandbox(tmp_path: Path) -> None:
    ledger = tmp_path / "demo-v3.db"
    template = DEMO_TEMPLATE.with_name("demo-template-v3.json")
    ran = cli("run", str(DEMO_CSV), "--template", str(template), "--ledger", str(ledger),
              "--key-column", "contact_id", "--sandbox", "--rate", "50/s", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["counts"]["submitted"] == 12
    polled = cli("poll", "--ledger", str(ledger), "--sandbox", "--until-done", "--json")
    assert polled.returncode == 0, polled.stderr
    assert json.loads(polled.stdout)["completed"] == 12
    out = tmp_path / "results.jsonl"
    assert cli("export", "--ledger", str(ledger), "-o", str(out)).returncode == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["api"] for r in rows} == {"v3"}
    assert all(r["video_status"] == "completed" and r["video_page_url"] for r in rows)
