"""Issue 18, items 1 and 2: a ledger belongs to one service and account, and an address
that can never be connected to is the run's problem, not the jobs'."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from engine.api.client import HeyGenClient
from engine.api.v2 import GENERATE_PATH
from engine.errors import ServiceUnreachable
from engine.ledger import statements
from engine.ledger.binding import key_fingerprint
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter
from engine.submitter.control import RunControl
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Rate, make_limiter
from engine.submitter.stats import PoolStats
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE, FixedAioresponses
from tests.processes import counters, standalone_sandbox
from tests.test_cli_end_to_end import cli

KEY = "sk-real-account-key-0123456789"


def contacts(tmp_path: Path, rows: int | None = None) -> Path:
    """The demo CSV as a user's contacts.csv (its first ``rows`` rows)."""
    path = tmp_path / "contacts.csv"
    lines = DEMO_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines if rows is None else lines[: rows + 1]), encoding="utf-8")
    return path


def run(jobs: Path, *extra: str, key: str | None = None) -> Any:
    args = ["run", str(jobs), "--template", str(DEMO_TEMPLATE), "--no-progress", *extra]
    return cli(*args, env={"HEYGEN_API_KEY": key} if key else None)


def ledger_rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        jobs = conn.execute("SELECT key, status, video_id, attempts FROM jobs ORDER BY key")
        meta = conn.execute("SELECT name, value FROM meta ORDER BY name")
        return [*jobs.fetchall(), *meta.fetchall()]


def twenty_contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    header = DEMO_CSV.read_text(encoding="utf-8").splitlines()[0]
    rows = [f"c-{n},Name{n},Last,n{n}@x.example,Acme,Oslo,the Suite,1.0" for n in range(20)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- item 1: a sandbox trial never poisons the real campaign --------------------------


def test_the_fingerprint_is_a_short_hash_never_the_key() -> None:
    expected = hashlib.sha256(b"heygen-batch:" + KEY.encode()).hexdigest()[:12]
    assert key_fingerprint(KEY) == expected
    assert key_fingerprint(KEY) != key_fingerprint(KEY + "x")


def test_a_sandbox_trial_then_the_real_key_is_refused_and_names_the_ledger_to_use(
    tmp_path: Path,
) -> None:
    jobs = contacts(tmp_path)
    ledger = tmp_path / "contacts.ledger.db"
    trial = run(jobs, "--sandbox")
    assert trial.returncode == 0, trial.stderr
    before = ledger_rows(ledger)
    with standalone_sandbox(key=KEY) as base_url:
        real = run(jobs, "--base-url", base_url, "--rate", "100/s", key=KEY)
        refused_json = run(jobs, "--base-url", base_url, "--json", key=KEY)
        seen = counters(base_url)
        own = tmp_path / f"contacts.{key_fingerprint(KEY)}.ledger.db"
        separate = run(
            jobs, "--base-url", base_url, "--rate", "100/s", "--ledger", str(own), key=KEY
        )
        created = counters(base_url)["created"]
    assert real.returncode == 2, real.stderr
    assert f"--ledger {own}" in real.stderr
    assert "contacts.sandbox.ledger.db" in real.stderr
    assert "the built-in sandbox" in real.stderr
    assert KEY not in real.stderr + real.stdout
    assert json.loads(refused_json.stdout)["exit_code"] == 2
    assert seen["requests"] == 0  # nothing sent
    assert ledger_rows(ledger) == before  # the ledger unchanged
    assert separate.returncode == 0, separate.stderr
    assert created == 12
    assert KEY not in own.read_bytes().decode("latin-1")


def test_a_sandbox_run_on_the_real_ledger_is_refused_and_so_is_poll(tmp_path: Path) -> None:
    jobs = contacts(tmp_path, 3)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox(key=KEY) as base_url:
        real = run(jobs, "--base-url", base_url, "--rate", "100/s", key=KEY)
        other_account = run(jobs, "--base-url", base_url, key=KEY + "-other")
    assert real.returncode == 0, real.stderr
    assert other_account.returncode == 2
    before = ledger_rows(ledger)
    trial = run(jobs, "--sandbox")
    polled = cli("poll", "--ledger", str(ledger), "--sandbox")
    reconciled = cli("reconcile", "--ledger", str(ledger), "--sandbox")
    assert trial.returncode == 2
    assert "--ledger " + str(tmp_path / "contacts.sandbox.ledger.db") in trial.stderr
    assert (polled.returncode, reconciled.returncode) == (2, 2)
    assert "contacts.sandbox.ledger.db" in polled.stderr
    assert ledger_rows(ledger) == before


def test_the_refusal_says_how_to_go_on_with_the_ledger_before_offering_a_new_one(
    tmp_path: Path,
) -> None:
    """A forgotten --base-url (poll defaults to HeyGen's own address) or another key:
    the fix is the ledger's own address or key; a new ledger would pay for every job
    again, and its suggested name never doubles a tag the ledger's name carries."""
    jobs = contacts(tmp_path, 3)
    with standalone_sandbox(key=KEY) as base_url:
        own = tmp_path / f"contacts.{key_fingerprint(KEY)}.ledger.db"
        first = run(jobs, "--base-url", base_url, "--ledger", str(own), key=KEY)
        polled = cli(
            "poll",
            "--ledger",
            str(own),
            "--base-url",
            "http://127.0.0.1:9",
            env={"HEYGEN_API_KEY": KEY},
        )
        other_key = cli(
            "poll", "--ledger", str(own), "--base-url", base_url, env={"HEYGEN_API_KEY": KEY + "-x"}
        )
    assert first.returncode == 0, first.stderr
    assert polled.returncode == 2
    assert f"run with --base-url {base_url}" in polled.stderr
    assert "sent (and paid) again" in polled.stderr
    assert f"{key_fingerprint(KEY)}.{key_fingerprint(KEY)}" not in polled.stderr
    assert other_key.returncode == 2
    assert "set HEYGEN_API_KEY to that key" in other_key.stderr
    assert "add --rebind once" in other_key.stderr
    assert f"contacts.{key_fingerprint(KEY + '-x')}.ledger.db" in other_key.stderr


def test_rebind_never_moves_a_ledger_between_the_sandbox_and_a_real_service(
    tmp_path: Path,
) -> None:
    jobs = contacts(tmp_path, 3)
    assert run(jobs, "--sandbox").returncode == 0
    with standalone_sandbox(key=KEY) as base_url:
        real = run(jobs, "--base-url", base_url, "--rebind", key=KEY)
        seen = counters(base_url)
    assert real.returncode == 2
    assert seen["requests"] == 0


def test_a_dry_run_never_binds(tmp_path: Path) -> None:
    jobs = contacts(tmp_path, 3)
    dry = run(jobs, "--dry-run", "--base-url", "https://api.heygen.com", key=KEY)
    assert dry.returncode == 0, dry.stderr
    trial = run(jobs, "--sandbox")
    assert trial.returncode == 0, trial.stderr


def test_an_old_sandbox_trial_ledger_is_recognised_by_its_sandbox_file(tmp_path: Path) -> None:
    """A ledger from before bindings: the sandbox's state file beside it tells."""
    jobs = contacts(tmp_path, 3)
    ledger = tmp_path / "contacts.ledger.db"
    assert run(jobs, "--sandbox").returncode == 0
    with closing(Ledger(ledger)) as store:
        store.set_meta("service", None)
    with standalone_sandbox(key=KEY) as base_url:
        real = run(jobs, "--base-url", base_url, key=KEY)
        seen = counters(base_url)
    assert real.returncode == 2
    assert seen["requests"] == 0


# --- item 2: a wrong address fails no job --------------------------------------------


def test_a_closed_port_stops_the_run_at_once_and_every_job_stays_pending(
    tmp_path: Path,
) -> None:
    jobs = twenty_contacts(tmp_path)
    ledger = tmp_path / "contacts.ledger.db"
    wrong = f"http://127.0.0.1:{closed_port()}"
    stopped = run(jobs, "--base-url", wrong, "--rate", "100/s", "--json", key=KEY)
    assert stopped.returncode == 2, stopped.stderr
    assert "--base-url" in stopped.stderr
    assert "no job failed" in stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["exit_code"] == 2
    assert "--base-url" in summary["reason"]
    rows = ledger_rows(ledger)
    jobs_rows = [r for r in rows if len(r) == 4]
    assert len(jobs_rows) == 20
    assert all(status == "pending" for _, status, _, _ in jobs_rows)
    assert all(attempts == 0 for *_, attempts in jobs_rows)  # no attempt burned
    # `status` tells the same story, not "stopped by the service".
    last_run = json.loads(cli("status", "--ledger", str(ledger), "--json").stdout)["last_run"]
    assert "--base-url" in last_run["reason"]
    with standalone_sandbox(key=KEY) as base_url:
        fixed = run(jobs, "--base-url", base_url, "--rate", "100/s", "--json", key=KEY)
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout)["counts"]["submitted"] == 20


def test_the_message_names_heygen_base_url_when_the_address_came_from_it(
    tmp_path: Path,
) -> None:
    jobs = contacts(tmp_path, 2)
    args = ["run", str(jobs), "--template", str(DEMO_TEMPLATE), "--no-progress"]
    wrong = f"http://127.0.0.1:{closed_port()}"
    stopped = cli(*args, env={"HEYGEN_API_KEY": KEY, "HEYGEN_BASE_URL": wrong})
    assert stopped.returncode == 2
    assert "HEYGEN_BASE_URL" in stopped.stderr
    assert "--base-url" in stopped.stderr


REFUSED = aiohttp.ClientConnectorError(
    aiohttp.client_reqrep.ConnectionKey("heygen.test", 80, False, True, None, None, None),
    OSError(111, "refused"),
)


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize("answered", [False, True])
async def test_a_connect_failure_stops_the_run_only_before_any_answer(
    tmp_path: Path, http: FixedAioresponses, answered: bool
) -> None:
    """After the service answered once, a connect failure is a passing fault: retried;
    when the retries run out the service is gone: the run stops, the job stays pending
    (a job is failed only by the service's own refusal)."""
    path = tmp_path / "l.db"
    with closing(Ledger(path)) as ledger:
        ledger.transaction([statements.insert_job("k", 1, "pending", {}, "sha", None)])
    for _ in range(3):
        http.post("http://heygen.test" + GENERATE_PATH, exception=REFUSED)
    writer = BatchWriter(path)
    writer.start()
    control = RunControl()
    async with HeyGenClient("http://heygen.test", "sk") as client:
        submitter = Submitter(
            client,
            make_limiter(Rate(1000, 1.0)),
            writer,
            control,
            3,
            PoolStats(),
            reachable=lambda: answered,
            address_given_by="--base-url",
        )
        status = await submitter.submit(SubmitItem("k", {"callback_id": "k"}, "sha"))
    await writer.close()
    with closing(Ledger(path)) as ledger:
        job = ledger.get("k")
    assert job is not None
    if answered:
        assert (status, job.status, job.attempts) == ("pending", "pending", 3)
        assert len(http.requests[("POST", URL("http://heygen.test" + GENERATE_PATH))]) == 3
        assert isinstance(control.abort, ServiceUnreachable)
        assert "gave up after 3 attempts" in str(control.abort)
    else:
        assert (status, job.status, job.attempts, job.error) == ("pending", "pending", 0, None)
        assert isinstance(control.abort, ServiceUnreachable)


def test_jobs_failed_by_connection_errors_in_an_old_ledger_are_pending_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    errors = {
        "refused": "gave up after 6 attempts: cannot connect to http://127.0.0.1:9: [Errno 111]",
        "timeout": "gave up after 6 attempts: timed out connecting to https://api.heygen.com",
        "no-request": "gave up after 6 attempts: no request can be made to http://x y: bad",
        "refusal": "HTTP 400 invalid_parameter: avatar_id not found",
    }
    with closing(Ledger(path)) as ledger:
        ledger.transaction(
            [statements.insert_job(k, 1, "failed", {}, "sha", e) for k, e in errors.items()]
        )
    # As a ledger made before the migration: it has not run yet.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM migrations WHERE name LIKE 'jobs failed by connection%'")
        conn.commit()
    with closing(Ledger(path)) as ledger:
        status = {k: ledger.get(k) for k in errors}
    assert {k: (j.status if j else None) for k, j in status.items()} == {
        "refused": "pending",
        "timeout": "pending",
        "no-request": "pending",
        "refusal": "failed",  # the service's own refusal stays failed
    }
