"""Break-it reproductions for the PostgreSQL scale-out (issue 16). Each test fails today."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from click.testing import CliRunner

from engine.cli import cli
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.processes import counters, environment, standalone_sandbox

SECRET = "S3cretPassw0rd"


def _with_password(url: str) -> str:
    """``url`` with a password given the libpq way, as a query parameter."""
    return url + ("&" if "?" in url else "?") + f"password={SECRET}"


def test_a_password_given_as_a_query_parameter_never_appears_in_output_or_report(
    tmp_path: Path, pg_url: str
) -> None:
    url = _with_password(pg_url)
    runner = CliRunner()
    loaded = runner.invoke(
        cli,
        ["enqueue", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE),
         "--key-column", "contact_id", "--ledger", url],
    )  # fmt: skip
    assert loaded.exit_code == 0, loaded.output
    assert SECRET not in loaded.output
    status = runner.invoke(cli, ["status", "--ledger", url, "--json"])
    assert SECRET not in status.output
    report = tmp_path / "r.html"
    runner.invoke(cli, ["report", "--ledger", url, "-o", str(report)])
    assert SECRET not in report.read_text()


# --- the database restarted mid-run ----------------------------------------------------


def _restart_mid_run(args: list[str], tmp_path: Path) -> tuple[int, dict[str, object], str]:
    """``args`` (a heygen-batch command taking ``{url}`` and ``{base}``) run against a
    cluster of its own, restarted once the sandbox has made a few videos."""
    from tests import pg_cluster
    from tests.test_submission_sandbox import write_jobs

    folder = pg_cluster.fresh_folder()
    url = pg_cluster.start(folder)
    bin_dir = pg_cluster._bin_dir()
    assert bin_dir is not None
    try:
        jobs = write_jobs(tmp_path / "jobs.jsonl", 200)
        env = environment(HEYGEN_API_KEY="sk-any", HEYGEN_BATCH_RECONCILE_GRACE_S="0")
        if args[0] == "worker":
            loaded = subprocess.run(
                [sys.executable, "-m", "engine", "enqueue", str(jobs),
                 "--key-column", "callback_id", "--ledger", url],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert loaded.returncode == 0, loaded.stderr
        with standalone_sandbox("--latency-ms", "300") as base:
            argv = [a.format(url=url, base=base, jobs=jobs) for a in args]
            process = subprocess.Popen(
                [sys.executable, "-m", "engine", *argv],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            for _ in range(600):  # a sync point, not a timed assertion
                if counters(base)["created"] >= 5:
                    break
                time.sleep(0.05)
            subprocess.run(
                pg_cluster._as_owner(
                    [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast",
                     "-w", "restart"]
                ),
                stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            out, err = process.communicate(timeout=180)
        return process.returncode, json.loads(out.splitlines()[-1]), err
    finally:
        pg_cluster.stop(folder)


def test_run_on_a_database_restarted_mid_run_exits_75_without_a_traceback(
    tmp_path: Path,
) -> None:
    code, summary, err = _restart_mid_run(
        ["run", "{jobs}", "--key-column", "callback_id", "--ledger", "{url}",
         "--base-url", "{base}", "--rate", "20/s", "--concurrency", "4",
         "--no-progress", "--json"],
        tmp_path,
    )  # fmt: skip
    assert "Traceback" not in err
    assert "ExceptionGroup" not in str(summary["reason"])
    assert code == 75, summary


def test_a_worker_whose_database_restarts_says_so_not_taskgroup(tmp_path: Path) -> None:
    code, summary, _ = _restart_mid_run(
        ["worker", "--ledger", "{url}", "--base-url", "{base}", "--rate", "20/s",
         "--concurrency", "4", "--no-progress", "--json"],
        tmp_path,
    )  # fmt: skip
    assert code == 75
    assert "TaskGroup" not in str(summary["reason"]), summary["reason"]


# --- default campaign names ------------------------------------------------------------


def test_two_jobs_files_with_long_names_are_two_campaigns_not_one(
    tmp_path: Path, pg_url: str
) -> None:
    """Two files a ledger file would keep apart (``<stem>.ledger.db`` each) land in one
    campaign once their stems are cut to 40 characters: the second file's rows, keyed
    like the first's, are taken for jobs already sent, and their videos never made."""
    stem = "q4_2026_enterprise_outreach_wave_one_customers"  # 46 characters
    first = tmp_path / f"{stem}_emea.csv"
    second = tmp_path / f"{stem}_apac.csv"
    rows = DEMO_CSV.read_text(encoding="utf-8")
    first.write_text(rows, encoding="utf-8")
    second.write_text(rows.replace("Seattle", "Singapore").replace("Dublin", "Tokyo"), "utf-8")
    runner = CliRunner()
    summaries = []
    for jobs in (first, second):
        result = runner.invoke(
            cli,
            ["run", str(jobs), "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id",
             "--ledger", pg_url, "--sandbox", "--rate", "100/s", "--no-progress", "--json"],
        )  # fmt: skip
        summaries.append(json.loads(result.stdout.splitlines()[-1]))
    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM heygen_batch.campaigns")]
    assert len(names) == 2, (names, summaries[1])


# --- enqueue of a changed file while a worker holds a job ------------------------------


def test_enqueue_never_says_refreshed_for_a_row_it_did_not_refresh(
    tmp_path: Path, pg_url: str
) -> None:
    """A changed row of a pending job a worker holds is left as it was (right: the worker
    may be sending it), yet counted ``refreshed``. Once the worker gives the claim back
    (a drain), the job is sent with the old text, after the user was told otherwise."""
    jobs = tmp_path / "leads.csv"
    jobs.write_text(DEMO_CSV.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["enqueue", str(jobs), "--template", str(DEMO_TEMPLATE),
            "--key-column", "contact_id", "--ledger", pg_url, "--json"]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # A live worker's claim on the first job.
        conn.execute("UPDATE campaign_leads.jobs SET claimed_by = 'host.1.1' WHERE key = 'c-001'")
    jobs.write_text(
        DEMO_CSV.read_text(encoding="utf-8").replace("Seattle", "Singapore"), encoding="utf-8"
    )
    again = json.loads(runner.invoke(cli, args).stdout.splitlines()[-1])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE campaign_leads.jobs SET claimed_by = NULL WHERE key = 'c-001'")
        (body,) = conn.execute(
            "SELECT body FROM campaign_leads.jobs WHERE key = 'c-001'"
        ).fetchone() or (None,)
    refreshed_now = "Singapore" in str(body)
    assert again["refreshed"] == int(refreshed_now), (again, body)


# --- a worker stopped (SIGSTOP) while it is the account's render poller -----------------


def test_a_stopped_worker_holding_the_render_poller_lock_does_not_stall_the_others(
    tmp_path: Path, pg_url: str
) -> None:
    """The poller's advisory lock lives as long as its connection, not its lease: a worker
    stopped (SIGSTOP, a paused VM, a hung host whose TCP stays up) keeps it after it was
    reaped, so no live worker ever frees a render slot and --max-rendering stalls them all
    for good."""
    import signal

    from tests.test_submission_sandbox import write_jobs

    jobs = write_jobs(tmp_path / "jobs.jsonl", 12)
    env = environment(HEYGEN_API_KEY="sk-any", HEYGEN_BATCH_RECONCILE_GRACE_S="0")
    subprocess.run(
        [sys.executable, "-m", "engine", "enqueue", str(jobs), "--key-column", "callback_id",
         "--ledger", pg_url],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    with standalone_sandbox("--render-seconds", "1") as base:
        args = [sys.executable, "-m", "engine", "worker", "--ledger", pg_url,
                "--base-url", base, "--no-progress", "--json", "--rate", "20/s",
                "--max-rendering", "2", "--lease", "3s"]  # fmt: skip
        stopped = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            for _ in range(600):  # a sync point: its first two renders started
                if counters(base)["created"] >= 2:
                    break
                time.sleep(0.05)
            stopped.send_signal(signal.SIGSTOP)
            live = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            try:
                live.communicate(timeout=60)  # a hang guard: 12 short renders need ~10 s
            except subprocess.TimeoutExpired:
                live.kill()
                live.communicate()
            made = counters(base)["created"]
        finally:
            stopped.kill()
            stopped.communicate()
    assert made == 12, f"{made} of 12 videos made: the live worker stalled"


# --- a worker serving every campaign -----------------------------------------------------


def test_a_campaign_with_a_key_this_worker_lacks_does_not_stop_it_serving_the_others(
    tmp_path: Path, pg_url: str
) -> None:
    """A worker started without --campaign serves every campaign. When another team
    enqueues one whose key is in a variable this host does not have (--key-env), every
    such worker refuses to start (exit 2) and the campaigns it could send wait for good."""
    runner = CliRunner()
    for name, extra in (("teama", []), ("teamb", ["--key-env", "TEAM_B_KEY"])):
        loaded = runner.invoke(
            cli,
            ["enqueue", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--key-column",
             "contact_id", "--ledger", pg_url, "--campaign", name, *extra],
        )  # fmt: skip
        assert loaded.exit_code == 0, loaded.output
    with standalone_sandbox() as base:
        worker = subprocess.run(
            [sys.executable, "-m", "engine", "worker", "--ledger", pg_url, "--base-url", base,
             "--rate", "50/s", "--no-progress", "--json"],
            capture_output=True, text=True, timeout=120,
            env=environment(HEYGEN_API_KEY="sk-any", HEYGEN_BATCH_RECONCILE_GRACE_S="0"),
        )  # fmt: skip
        made = counters(base)["created"]
    assert made == 12, (worker.returncode, worker.stdout[-300:], worker.stderr[-300:])


# --- exit codes ------------------------------------------------------------------------


def test_a_database_that_does_not_exist_is_a_configuration_error_not_try_again_later(
    pg_url: str,
) -> None:
    """A --ledger naming a database the server does not have (a typo) will not come right
    by waiting: CONTRACT 2 makes it exit 2, as a missing ledger file is. It exits 75, so
    a cron job retries it silently every night."""
    missing = pg_url.replace("/t_", "/missing_t_", 1)
    result = CliRunner().invoke(cli, ["export", "--ledger", missing])
    assert result.exit_code == 2, result.output


# --- two workers of one key at two rates ---------------------------------------------


async def test_a_worker_at_a_faster_rate_never_takes_a_slower_workers_key_past_its_rate(
    pg_url: str,
) -> None:
    """Each caller's grant is judged against its own (n, period) only: a worker at --rate
    1/s and one at 20/s on one key let the key make 2 or more starts in a second, though
    one of them promised no more than 1 in any second. The shared log should hold every
    rate its callers asked for (the strictest wins), or refuse the mix."""
    import asyncio

    from engine.ledger.postgres.fleet import Fleet

    async with await Fleet.open(pg_url) as fleet:
        assert await fleet.start_allowed("acct", 1, 1.0) == 0.0  # the 1/s worker starts
        await fleet.start_allowed("acct", 1, 0.05)  # the 20/s worker asks
        await asyncio.sleep(0.06)  # past its own period, within the 1/s worker's
        second = await fleet.start_allowed("acct", 1, 0.05)
    assert second > 0.0, "a second start within the same second was granted"


# --- a worker started with a wrong key -------------------------------------------------


def test_a_worker_started_once_with_a_wrong_key_does_not_lock_out_the_right_one(
    tmp_path: Path, pg_url: str
) -> None:
    """A key refused with 401 sent nothing, yet the worker bound the campaign to it (a
    ledger-file run leaves the binding to the first run that sends). The right key is
    then refused with exit 2, and the fix the message gives (--rebind) exists neither on
    `worker` nor on `run` with a PostgreSQL ledger: the campaign cannot be sent."""
    loaded = CliRunner().invoke(
        cli,
        ["enqueue", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--key-column",
         "contact_id", "--ledger", pg_url],
    )  # fmt: skip
    assert loaded.exit_code == 0, loaded.output
    with standalone_sandbox(key="sk-right") as base:
        codes = []
        for key in ("sk-wrong", "sk-right"):
            worker = subprocess.run(
                [sys.executable, "-m", "engine", "worker", "--ledger", pg_url,
                 "--base-url", base, "--rate", "50/s", "--no-progress", "--json"],
                capture_output=True, text=True, timeout=120,
                env=environment(HEYGEN_API_KEY=key, HEYGEN_BATCH_RECONCILE_GRACE_S="0"),
            )  # fmt: skip
            codes.append(worker.returncode)
        made = counters(base)["created"]
    assert codes[0] == 3
    assert (codes[1], made) == (0, 12), worker.stderr[-400:]


# --- webhook serve across a database restart -------------------------------------------


def test_webhook_serve_on_a_database_keeps_working_after_the_database_restarts(
    tmp_path: Path,
) -> None:
    """``webhook serve`` is an always-on receiver holding one connection, never made
    again: once the database restarts (a failover, an upgrade) every delivery fails
    (500) until someone restarts the receiver, though the database is back."""
    import urllib.error
    import urllib.request

    from engine.delivery.signature import SIGNATURE_HEADERS, sign
    from tests import pg_cluster

    folder = pg_cluster.fresh_folder()
    url = pg_cluster.start(folder)
    bin_dir = pg_cluster._bin_dir()
    assert bin_dir is not None
    env = environment(
        HEYGEN_API_KEY="sk-any", HEYGEN_WEBHOOK_SECRET="whsec", HEYGEN_BATCH_RECONCILE_GRACE_S="0"
    )
    receiver = None
    try:
        with standalone_sandbox() as base:
            ran = subprocess.run(
                [sys.executable, "-m", "engine", "run", str(DEMO_CSV), "--template",
                 str(DEMO_TEMPLATE), "--key-column", "contact_id", "--ledger", url,
                 "--base-url", base, "--rate", "50/s", "--no-progress"],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT video_id FROM campaign_demo.jobs WHERE key = 'c-001'"
                ).fetchone()
            assert row is not None
            receiver = subprocess.Popen(
                [sys.executable, "-m", "engine", "webhook", "serve", "--ledger", url,
                 "--base-url", base, "--port", "0"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            assert receiver.stdout is not None
            hook = receiver.stdout.readline().rsplit(" ", 1)[1].strip()
            subprocess.run(
                pg_cluster._as_owner(
                    [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast",
                     "-w", "restart"]
                ),
                stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            event = json.dumps(
                {"event_type": "avatar_video.success", "event_data": {"video_id": row[0]}}
            ).encode()
            answers = []
            for _ in range(3):  # HeyGen delivers again after a failure
                request = urllib.request.Request(
                    hook,
                    data=event,
                    headers={SIGNATURE_HEADERS[0]: sign("whsec", event),
                             "Content-Type": "application/json"},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        answers.append(answer.status)
                except urllib.error.HTTPError as err:
                    answers.append(err.code)
            with psycopg.connect(url) as conn:
                status = conn.execute(
                    "SELECT video_status FROM campaign_demo.jobs WHERE key = 'c-001'"
                ).fetchone()
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.communicate(timeout=30)
        pg_cluster.stop(folder)
    assert status is not None
    assert status[0] is not None, answers


# --- a worker stopped (SIGSTOP) while it is the account's reconciler ---------------------


def test_a_stopped_worker_holding_the_reconcile_lock_does_not_leave_jobs_uncertain_forever(
    tmp_path: Path, pg_url: str
) -> None:
    """Same cause as the poller's: the reconcile lock is a session advisory lock, held as
    long as a stopped worker's connection stays up, long after its lease was reaped. No
    other worker can reconcile; one with only uncertain jobs left never ends."""
    import signal

    from tests.test_submission_sandbox import write_jobs

    jobs = write_jobs(tmp_path / "jobs.jsonl", 10)
    env = environment(HEYGEN_API_KEY="sk-any", HEYGEN_BATCH_RECONCILE_GRACE_S="0")
    with standalone_sandbox() as base:
        subprocess.run(
            [sys.executable, "-m", "engine", "run", str(jobs), "--key-column", "callback_id",
             "--ledger", pg_url, "--base-url", base, "--rate", "50/s", "--no-progress"],
            check=True, capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        with psycopg.connect(pg_url, autocommit=True) as conn:
            # Their answers lost: made at the service, uncertain here.
            conn.execute("UPDATE campaign_jobs.jobs SET status = 'uncertain', video_id = NULL")
        args = [sys.executable, "-m", "engine", "worker", "--ledger", pg_url,
                "--base-url", base, "--no-progress", "--json", "--rate", "1/s",
                "--lease", "3s"]  # fmt: skip
        stopped = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                for _ in range(600):  # a sync point: it is reconciling (1 check a second)
                    held = conn.execute(
                        "SELECT count(*) FROM heygen_batch.roles WHERE role = 'reconcile'"
                    ).fetchone()
                    if held and held[0]:
                        break
                    time.sleep(0.05)
            stopped.send_signal(signal.SIGSTOP)
            live = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            try:
                live.communicate(timeout=60)  # a hang guard: 10 checks at 1/s
            except subprocess.TimeoutExpired:
                live.kill()
                live.communicate()
        finally:
            stopped.kill()
            stopped.communicate()
    with psycopg.connect(pg_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM campaign_jobs.jobs WHERE status = 'uncertain'"
        ).fetchone()
    assert left == (0,), f"{left} jobs still uncertain: the live worker could not reconcile"
