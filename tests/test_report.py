"""``heygen-batch report`` on a ledger filled by a real run with faults: what the page
says, that it loads and runs nothing, and what a person sees in headless Chromium
(Debian's ``chromium``, installed by ``make install``) with the network cut off and
JavaScript on, so a script smuggled in by a row would run and show."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import html5lib
import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, Request, sync_playwright

from engine.ledger import Ledger
from engine.sandbox import SandboxConfig
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_crash_resume import cli_env
from tests.threaded_sandbox import Handler, threaded_sandbox

SCRIPT_KEY = "<script>alert(1)</script>"
IMG_KEY = '"><img src=x onerror=alert(2)>'
#: The service's message for the row whose first name is Mallory: text from outside.
HOSTILE_MESSAGE = "</td><script>alert(3)</script><img src=x onerror=alert(4)>"
ROWS = 40


@dataclass
class Campaign:
    ledger: Path
    page: Path
    html: str
    #: Statuses the sandbox answered generate with, as the test's hook saw them.
    answers: Counter[int]


def write_jobs(path: Path) -> None:
    """``ROWS`` demo contacts; every ninth one invalid (no first name); two with hostile
    keys: one invalid, one refused by the service with a hostile message."""
    with DEMO_CSV.open(encoding="utf-8", newline="") as f:
        header, *demo = list(csv.reader(f))
    rows = [header]
    for i in range(ROWS):
        row = list(demo[i % len(demo)])
        row[0] = f"k-{i:03d}"
        if i % 9 == 4:
            row[1] = ""
        rows.append(row)
    rows[2][0] = IMG_KEY
    rows[2][1] = ""
    rows[6][0] = SCRIPT_KEY
    rows[6][1] = "Mallory"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True, text=True, env=cli_env(), timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """A keyed run against a sandbox that answers some requests 429 (Retry-After 0, so
    nothing really sleeps) and some 5xx, renders at once and fails a share of renders;
    then ``poll --until-done`` and ``report``."""
    tmp = tmp_path_factory.mktemp("report")
    jobs, ledger = tmp / "jobs.csv", tmp / "campaign.db"
    write_jobs(jobs)
    answers: Counter[int] = Counter()

    async def hook(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if "Mallory" in json.dumps(body):
            error = {"code": "invalid_parameter", "message": HOSTILE_MESSAGE}
            answer: web.StreamResponse = web.json_response(
                {"error": error, "data": None}, status=400
            )
        else:
            answer = await handler(request)
        answers[answer.status] += 1
        return answer

    config = SandboxConfig(
        seed=7,
        rate_429=0.2,
        retry_after_s=0.0,
        rate_5xx=0.1,
        render_seconds=0.0,
        render_failure_ratio=0.25,
    )
    with threaded_sandbox(hook, config) as (url, _state):
        run = cli(
            "run", str(jobs), "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id",
            "--ledger", str(ledger), "--base-url", url, "--rate", "200/s", "--no-progress",
        )  # fmt: skip
        assert run.returncode == 1, run.stderr  # the invalid rows and the refused one
        polled = cli("poll", "--ledger", str(ledger), "--base-url", url, "--until-done")
        assert polled.returncode == 0, polled.stderr
    done = cli("report", "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    page = tmp / "campaign.report.html"
    assert f"to {page}" in done.stderr
    return Campaign(ledger, page, page.read_text(encoding="utf-8"), answers)


class _Elements(HTMLParser):
    """Each element's tag and attributes, and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.by_id: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "br", "img", "link", "input"):
            self._open.append(dict(attrs).get("id"))
            if self._open[-1]:
                self.by_id[self._open[-1] or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for open_id in self._open:
            if open_id:
                self.by_id[open_id] += data


def elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def ledger_counts(ledger: Path) -> dict[str, int]:
    store = Ledger(ledger, create=False)
    try:
        return store.counts()
    finally:
        store.close()


def attempts(ledger: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(
            "SELECT key, attempt, started_at, latency_ms, outcome, code, retry_after_s "
            "FROM attempts"
        ).fetchall()


def test_the_counts_on_the_page_are_the_ledgers(campaign: Campaign) -> None:
    counts = ledger_counts(campaign.ledger)
    shown = elements(campaign.html).by_id
    assert counts["invalid"] == 5  # rows without a first name, one with a hostile key
    assert counts["failed"] == 1  # Mallory's
    assert counts["submitted"] == ROWS - 6
    for status, n in counts.items():
        assert shown[f"count-{status}"].strip() == str(n), status
    assert shown["count-jobs"].strip() == str(ROWS)
    with sqlite3.connect(campaign.ledger) as conn:
        completed = conn.execute(
            "SELECT count(*) FROM jobs WHERE video_status = 'completed'"
        ).fetchone()[0]
    assert 0 < completed < counts["submitted"]  # some renders failed
    assert shown["count-completed"].strip() == str(completed)


def test_every_request_the_service_saw_is_an_attempt(campaign: Campaign) -> None:
    rows = attempts(campaign.ledger)
    outcomes = Counter(row[4] for row in rows)
    answers = campaign.answers
    assert answers[429] > 0
    assert sum(n for status, n in answers.items() if status >= 500) > 0
    assert len(rows) == sum(answers.values())
    assert outcomes["http 429"] == answers[429]
    assert outcomes["http 400"] == answers[400] == 1
    assert outcomes["ok"] == answers[200]
    assert all(row[3] >= 0 and row[2] > 1e9 for row in rows)
    assert all(row[6] == 0.0 for row in rows if row[4] == "http 429")  # Retry-After: 0
    shown = elements(campaign.html).by_id
    assert shown["count-requests"].strip() == str(len(rows))
    assert shown["count-429"].strip() == str(answers[429])
    retries = len(rows) - len({row[0] for row in rows})
    assert retries > 0
    assert shown["count-retries"].strip() == str(retries)


def test_the_page_loads_nothing_and_holds_no_script(campaign: Campaign) -> None:
    tags = elements(campaign.html).tags
    names = [tag for tag, _ in tags]
    assert "script" not in names
    assert "link" not in names
    assert "img" not in names
    for tag, attrs in tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "xlink:href", "action", "data"):
                raise AssertionError(f"<{tag} {name}={value!r}> would load something")
    policy = [
        a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy
    assert "default-src 'none'" in (policy[0]["content"] or "")
    assert names.count("svg") >= 5


def test_values_from_rows_and_the_service_are_escaped(campaign: Campaign) -> None:
    page = campaign.html
    for raw in ("<script>alert", "<img src=x", "onerror=alert(2)>"):
        assert raw not in page
    # Shown, as text: the hostile key of an invalid row, and the service's hostile message.
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/td&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    errors = page[page.index('id="errors"') :]
    assert "HTTP 400 invalid_parameter" in errors
    assert "render_failed" in errors


def test_the_page_is_valid_html(campaign: Campaign) -> None:
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(campaign.html)
    assert not parser.errors


def test_render_times_video_seconds_and_spend_are_filled(campaign: Campaign) -> None:
    with sqlite3.connect(campaign.ledger) as conn:
        rows = conn.execute(
            "SELECT estimated_seconds, duration_s, render_ended_at FROM jobs "
            "WHERE video_status = 'completed'"
        ).fetchall()
    assert rows
    assert all(e is not None and e > 0 for e, _, _ in rows)
    assert all(d is not None and d > 0 for _, d, _ in rows)
    assert all(t is not None for _, _, t in rows)
    page = campaign.html
    spend = page[page.index('id="spend"') :]
    assert f'id="count-spend-completed">{len(rows)}<' in spend
    assert "Render time (answer to completed)" in page
    assert f"{len(rows)} completed videos: median" in page


def test_o_names_the_file_and_a_missing_ledger_is_exit_2(
    campaign: Campaign, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "mine.html"
    done = cli("report", "--ledger", str(campaign.ledger), "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = cli("report", "--ledger", str(tmp_path / "none.db"))
    assert missing.returncode == 2
    assert "no such ledger" in missing.stderr
    assert not (tmp_path / "none.report.html").exists()


# --- in Chromium ---------------------------------------------------------------------

#: As the machine's own probe starts it: root needs --no-sandbox, and without the
#: background-networking flags Chromium keeps trying to reach its vendor's hosts.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "no Chromium: `make install` installs Debian's chromium package"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
        )
        yield launched
        launched.close()


class Opened:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.errors: list[str] = []


@pytest.fixture
def opened(browser: Browser, campaign: Campaign) -> Iterator[Opened]:
    context = browser.new_context(offline=True, java_script_enabled=True)
    page = context.new_page()
    seen = Opened(page)

    def on_request(request: Request) -> None:
        if request.url != campaign.page.as_uri():
            seen.requests.append(request.url)

    page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", on_request)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.goto(campaign.page.as_uri(), wait_until="load")
    yield seen
    context.close()


def test_a_person_sees_the_counts(opened: Opened, campaign: Campaign) -> None:
    page = opened.page
    store = Ledger(campaign.ledger, create=False)
    try:
        counts = store.counts()
    finally:
        store.close()
    for status, n in counts.items():
        tile = page.locator(f"#count-{status}")
        assert tile.is_visible()
        assert tile.inner_text().strip() == str(n)
    body = page.locator("body").inner_text()
    assert "Jobs by status" in body
    assert "Render outcomes" in body


def test_the_charts_drew(opened: Opened, tmp_path: Path) -> None:
    charts = opened.page.locator(".chart svg")
    assert charts.count() >= 5
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 50
    # Bars of the status chart were laid out with a height, not just declared.
    bars = opened.page.locator("#statuses .chart svg rect.rect")
    heights = [
        box["height"] for box in (bars.nth(i).bounding_box() for i in range(bars.count())) if box
    ]
    assert max(heights) > 20
    shot = opened.page.locator("#statuses .chart").screenshot(path=str(tmp_path / "chart.png"))
    # A blank area of this size compresses to a few hundred bytes; drawn axes, bars
    # and labels to many times that.
    assert len(shot) > 5000


def test_nothing_from_a_row_ran_and_nothing_was_fetched(opened: Opened) -> None:
    page = opened.page
    assert opened.dialogs == []
    assert opened.errors == []
    assert opened.requests == []
    # The hostile values are on the page as text a person can read.
    errors = page.locator("#errors").inner_text()
    assert "<script>alert(1)</script>" in errors
    assert '"><img src=x onerror=alert(2)>' in errors
    assert page.locator("#errors img").count() == 0
    assert page.locator("script").count() == 0
