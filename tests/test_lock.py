"""One run per ledger: a second process exits 75 at once and touches nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.ledger import LedgerBusy, ledger_lock
from engine.ledger.lock import lock_path
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.processes import standalone_sandbox
from tests.test_crash_resume import cli_env, run_args, write_contacts

# Holds the lock the way a run does (lock first, then the ledger open with a write in
# its WAL) until its standard input closes.
HOLDER = """
import sys
from pathlib import Path
from engine.ledger import ledger_lock, statements, store
from engine.ledger.store import Ledger
path = Path(sys.argv[1])
with ledger_lock(path):
    ledger = Ledger(path)
    ledger.transaction([statements.insert_job("held", 1, "pending", {"a": "b"}, "sha", None)])
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def lock_holder(ledger: Path) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ledger)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        try:
            yield holder
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait(timeout=10)


def snapshot(ledger: Path) -> dict[str, tuple[int, bytes] | None]:
    """Bytes and modification time of the ledger and its WAL files (None: absent)."""
    files = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(ledger) + suffix)
        files[suffix] = (path.stat().st_mtime_ns, path.read_bytes()) if path.exists() else None
    return files


def engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )


def test_every_command_that_writes_exits_75_and_touches_nothing(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 5)
    ledger = tmp_path / "contacts.ledger.db"
    with lock_holder(ledger):
        before = snapshot(ledger)
        assert before["-wal"] is not None  # the holder's write sits in the WAL
        contenders = [
            (
                "run",
                str(jobs),
                "--template",
                str(DEMO_TEMPLATE),
                "--base-url",
                "http://127.0.0.1:9",
            ),
            ("poll", "--ledger", str(ledger), "--base-url", "http://127.0.0.1:9"),
            ("reconcile", "--ledger", str(ledger), "--base-url", "http://127.0.0.1:9"),
        ]
        for args in contenders:
            result = engine(*args)
            assert result.returncode == 75, result.stderr
            assert "in use by another heygen-batch run" in result.stderr
            assert result.stdout == ""
        assert snapshot(ledger) == before


def test_a_cron_overlap_is_harmless(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 8)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox() as url:
        # 8 requests at 2/s: the first run holds the ledger for about four seconds, well
        # past a second process's start (about a second, more on a loaded machine).
        slow = run_args(jobs, url, "--rate", "2/s")
        with subprocess.Popen(
            slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env()
        ) as first:
            while not ledger.exists() and first.poll() is None:
                time.sleep(0.01)
            second = subprocess.run(
                run_args(jobs, url), capture_output=True, text=True, env=cli_env(), timeout=60
            )
            assert first.wait(timeout=30) == 0
        assert second.returncode == 75, second.stderr
        again = subprocess.run(
            run_args(jobs, url, "--json"), capture_output=True, text=True, env=cli_env()
        )
    assert again.returncode == 0, again.stderr
    assert '"already_done": 8' in again.stdout


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    with lock_holder(ledger) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert lock_path(ledger).exists()  # the file stays; the kernel dropped the lock
    with ledger_lock(ledger):
        pass
    exported = engine("export", "--ledger", str(ledger))
    assert exported.returncode == 0
    assert "\nheld,1,pending," in exported.stdout  # its committed write survived the kill


def test_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    ledger = tmp_path / "new" / "folder" / "l.db"
    with ledger_lock(ledger), pytest.raises(LedgerBusy), ledger_lock(ledger):
        pass
    with ledger_lock(ledger):
        pass


def test_poll_of_a_missing_ledger_leaves_no_lock_file(tmp_path: Path) -> None:
    ledger = tmp_path / "missing.db"
    result = engine("poll", "--ledger", str(ledger), "--base-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "no such ledger" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_ledger_in_a_folder_that_cannot_hold_its_lock_is_a_usage_error(tmp_path: Path) -> None:
    """Not "in use by another run" (exit 75, which cron retries forever): exit 2, and why."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE),
         "--ledger", str(blocker / "demo.db"), "--sandbox"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot create" in result.output
