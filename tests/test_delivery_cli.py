"""download and webhook from the command line, and the sandbox → webhook serve → ledger path."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from engine.cli import cli
from engine.sandbox import SandboxConfig
from engine.sandbox.media import fake_media
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE, LedgerSpec
from tests.test_crash_resume import cli_env
from tests.test_reconcile import T0
from tests.test_sandbox import FakeClock
from tests.threaded_sandbox import run_keyed, threaded_sandbox

SECRET = "whsec_cli-test-secret"
DEMO_ROWS = 12


def heygen(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True, text=True, env=cli_env(**env), timeout=120, check=False, cwd=cwd,
    )  # fmt: skip


def test_download_saves_the_campaign_and_export_names_the_files(
    tmp_path: Path, store: LedgerSpec
) -> None:
    ledger, folder = store.args(), tmp_path / "videos"
    with threaded_sandbox(config=SandboxConfig(render_seconds=0)) as (url, _):
        assert run_keyed(DEMO_CSV, DEMO_TEMPLATE, store.where, url, *ledger[2:]).returncode == 0
        polled = heygen("poll", *ledger, "--base-url", url, "--rate", "100/s")
        assert polled.returncode == 0, polled.stderr
        args = ["download", *ledger, "--to", str(folder), "--base-url", url]
        first = heygen(*args, "--what", "video,thumbnail", "--no-progress")
        again = heygen(*args)
    assert first.returncode == 0, first.stderr
    assert f"{2 * DEMO_ROWS} saved" in first.stdout
    assert again.returncode == 0, again.stderr
    assert f"0 saved (0 bytes), {DEMO_ROWS} already there" in again.stdout
    exported = heygen("export", *ledger, "-o", "-")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == DEMO_ROWS
    assert list(rows[0])[-1] == "file_path"
    for row in rows:
        path = Path(row["file_path"])
        assert path == folder / f"{row['key']}.mp4"
        assert path.read_bytes() == fake_media(row["video_id"], "mp4")


def test_download_into_a_folder_that_cannot_be_made_exits_2(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with threaded_sandbox(config=SandboxConfig(render_seconds=0)) as (url, _):
        assert run_keyed(DEMO_CSV, DEMO_TEMPLATE, ledger, url).returncode == 0
        assert heygen("poll", "--ledger", str(ledger), "--base-url", url).returncode == 0
        done = heygen(
            "download", "--ledger", str(ledger), "--to", str(blocker / "v"), "--base-url", url
        )
    assert done.returncode == 2
    assert "give --to a folder you can write to" in done.stderr
    assert not list(tmp_path.rglob("*.part"))


def test_download_refuses_an_unknown_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["download", "--ledger", str(tmp_path / "l.db"), "--to", "v", "--what", "audio"]
    )
    assert result.exit_code == 2
    assert "video, captions, thumbnail" in result.output


def test_webhook_serve_without_a_secret_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["webhook", "serve", "--ledger", str(tmp_path / "l.db"), "--sandbox"],
        env={"HEYGEN_WEBHOOK_SECRET": ""},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "HEYGEN_WEBHOOK_SECRET" in result.output


def test_webhook_register_refuses_plain_http_to_another_host() -> None:
    result = CliRunner().invoke(
        cli, ["webhook", "register", "--url", "http://hooks.example.com/webhook"],
        env={"HEYGEN_API_KEY": "sk-test"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "https://" in result.output


def test_webhook_register_prints_the_secret_once() -> None:
    with threaded_sandbox() as (url, _):
        done = heygen(
            "webhook", "register", "--url", "http://127.0.0.1:9/webhook", "--base-url", url
        )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("secret: ")]
    secret = line.removeprefix("secret: ")
    assert secret.startswith("whsec_")
    assert done.stdout.count(secret) == 1
    assert "HEYGEN_WEBHOOK_SECRET" in done.stdout
    assert secret not in done.stderr


def test_sandbox_webhooks_reach_the_ledger_through_webhook_serve(store: LedgerSpec) -> None:
    ledger = store.args()
    clock = FakeClock(T0)
    config = SandboxConfig(render_seconds=60, webhook_secret=SECRET)
    with threaded_sandbox(config=config, clock=clock) as (url, state):
        assert run_keyed(DEMO_CSV, DEMO_TEMPLATE, store.where, url, *ledger[2:]).returncode == 0
        serve = subprocess.Popen(
            [sys.executable, "-m", "engine", "webhook", "serve", *ledger,
             "--base-url", url, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env(HEYGEN_WEBHOOK_SECRET=SECRET),
        )  # fmt: skip
        # Only a guard against a hang: the test waits on the receiver's own log lines.
        watchdog = threading.Timer(90, serve.kill)
        watchdog.start()
        try:
            assert serve.stdout is not None
            assert serve.stderr is not None
            line = serve.stdout.readline()
            assert line.startswith("Webhook receiver listening on "), line
            state.config.webhook_url = line.rsplit(" ", 1)[1].strip()
            clock.now += 61  # every render ends; the sandbox delivers
            completed = 0
            while completed < DEMO_ROWS:
                log = serve.stderr.readline()
                assert log, "webhook serve stopped"
                completed += " is completed" in log
        finally:
            watchdog.cancel()
            serve.terminate()
            serve.wait(10)
            for stream in (serve.stdout, serve.stderr):
                if stream is not None:
                    stream.close()
    with closing(store.open(create=False)) as opened:
        jobs = list(opened.iter_jobs())
    assert len(jobs) == DEMO_ROWS
    assert {j.video_status for j in jobs} == {"completed"}
    assert all(j.video_url for j in jobs)


def test_download_takes_its_options_from_the_campaign_file(tmp_path: Path) -> None:
    # One file for the whole campaign: run's keys are left to run, paths are read from
    # the file's folder, and a flag given on the command line still wins.
    folder = tmp_path / "campaign"
    folder.mkdir()
    ledger = folder / "l.db"
    with threaded_sandbox(config=SandboxConfig(render_seconds=0)) as (url, _):
        assert run_keyed(DEMO_CSV, DEMO_TEMPLATE, ledger, url).returncode == 0
        config = folder / "campaign.yaml"
        config.write_text(
            f"jobs: {DEMO_CSV}\ntemplate: {DEMO_TEMPLATE}\nkey_column: contact_id\n"
            f"ledger: l.db\nbase_url: {url}\nrate: 100/s\nto: videos\nwhat: thumbnail\n"
            "no_progress: true\n",
            encoding="utf-8",
        )
        polled = heygen("poll", "--config", str(config))
        assert polled.returncode == 0, polled.stderr
        saved = heygen("download", "--config", str(config), cwd=tmp_path)
        flagged = heygen("download", "--config", str(config), "--what", "video")
    assert saved.returncode == 0, saved.stderr
    assert f"{DEMO_ROWS} saved" in saved.stdout
    assert len(list((folder / "videos").glob("*.jpg"))) == DEMO_ROWS
    assert flagged.returncode == 0, flagged.stderr
    assert len(list((folder / "videos").glob("*.mp4"))) == DEMO_ROWS


def test_download_refuses_an_unknown_key_in_the_campaign_file(tmp_path: Path) -> None:
    config = tmp_path / "campaign.yaml"
    config.write_text("ledger: l.db\nto: videos\nwaht: video\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["download", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'waht'; did you mean 'what'?" in result.output
