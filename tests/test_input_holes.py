"""Holes in reading the input and resolving the service, found by review of issues 12 and 17."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.api.client import HeyGenClient
from engine.api.v2 import GENERATE_PATH
from engine.errors import ConfigError, EngineError, RequestNotMade, UnreadableAnswer, WrongAddress
from engine.ledger.kinds import KindGuard
from engine.ledger.statements import set_videos
from engine.ledger.store import Ledger
from engine.reader import JobsFormat, JobsSource, open_rows
from engine.service import resolve_service
from engine.submitter.retry import Step, next_step
from tests.conftest import DEMO_TEMPLATE, FixedAioresponses
from tests.test_campaign_ids import contacts, jobs_of
from tests.test_crash_resume import cli_env
from tests.test_reader_csv import finished
from tests.threaded_sandbox import Handler, created_per_callback, run_keyed, threaded_sandbox


def _validate(jobs: Path, template: Path, *extra: str) -> Any:
    args = [sys.executable, "-m", "engine", "validate", str(jobs), "--template", str(template)]
    return subprocess.run(
        [*args, *extra], capture_output=True, text=True, env=cli_env(), timeout=60
    )


def test_a_header_repeated_mid_file_is_not_sent_as_a_contact(tmp_path: Path) -> None:
    lines = contacts(tmp_path / "a.csv", 2).read_text(encoding="utf-8").splitlines()
    jobs = tmp_path / "joined.csv"
    # a.csv (header, c-001, c-002) then b.csv (BOM, header, c-101).
    joined = [*lines, "\ufeff" + lines[0], "c-101" + lines[1][len("c-001") :]]
    jobs.write_text("\n".join(joined) + "\n", encoding="utf-8")
    # A template with no typed column (the demo's speed would refuse the row by luck).
    data = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    data["video_inputs"][0]["voice"]["speed"] = 1.0
    template = tmp_path / "t.json"
    template.write_text(json.dumps(data), encoding="utf-8")
    done, created = created_per_callback(jobs, template, tmp_path, "--key-column", "contact_id")
    assert len(created) == 3, (done.stderr, created)


def test_a_file_still_being_written_cut_inside_a_utf8_character_is_not_a_usage_error(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_bytes(
        b"contact_id,first_name,last_name,company,city,product,speed\n"
        b"c-1,Ann,A,Acme,Oslo,X,1.0\n"
        b"c-2,Jos\xc3"
    )
    args = [
        sys.executable, "-m", "engine", "validate", str(jobs), "--template", str(DEMO_TEMPLATE),
        "--key-column", "contact_id",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 valid" in done.stdout


def test_an_excel_sep_line_names_the_delimiter(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(
        "sep=;\ncontact_id;first_name;last_name;company;city;product;speed\n"
        "c-1;Ann;A;Acme;Oslo;X;1.0\nc-2;Bob;B;Acme;Oslo;X;1.0\n",
        encoding="utf-8",
    )
    done = _validate(jobs, DEMO_TEMPLATE, "--key-column", "contact_id")
    assert done.returncode == 0, done.stderr
    assert "2 valid" in done.stdout


def test_a_tab_file_whose_header_holds_a_comma_is_read_on_tabs(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(
        "contact_id\tName, given\nc-1\tAnn\nc-2\tBob\n",
        encoding="utf-8",
    )
    template = tmp_path / "t.json"
    data = {
        "title": "Hi {{ contact_id }}",
        "video_inputs": [
            {
                "character": {"type": "avatar", "avatar_id": "a1", "avatar_style": "normal"},
                "voice": {"type": "text", "input_text": "Hello there", "voice_id": "v1"},
            }
        ],
    }
    template.write_text(json.dumps(data), encoding="utf-8")
    done = _validate(jobs, template, "--key-column", "contact_id")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tab-separated" in done.stdout


def test_an_api_key_with_a_control_character_is_a_configuration_error(tmp_path: Path) -> None:
    from engine.ledger.store import Ledger
    from tests.test_campaign_ids import run_args

    jobs = contacts(tmp_path / "contacts.csv", 2)
    ledger = tmp_path / "l.db"
    with threaded_sandbox() as (url, _state):
        done = subprocess.run(
            run_args(jobs, ledger, url, "--json"),
            capture_output=True, text=True, timeout=60,
            env=cli_env(HEYGEN_API_KEY="sk-secret-key\x7f"),
        )  # fmt: skip
    summary = json.loads(done.stdout)
    assert done.returncode == 2, summary
    assert "HEYGEN_API_KEY" in summary["reason"]
    assert "Traceback" not in done.stderr
    assert "sk-secret-key" not in done.stdout + done.stderr
    if ledger.exists():
        reopened = Ledger(ledger)
        statuses = {j.status for j in reopened.iter_jobs()}
        reopened.close()
        assert statuses <= {"pending"}, statuses


def test_a_base_url_no_request_can_be_made_to_leaves_jobs_pending(tmp_path: Path) -> None:
    from engine.ledger.store import Ledger
    from tests.test_campaign_ids import run_args

    jobs = contacts(tmp_path / "contacts.csv", 2)
    ledger = tmp_path / "l.db"
    args = run_args(jobs, ledger, "http://127.0.0.1:99999", "--json")
    done = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=60)
    summary = json.loads(done.stdout)
    assert done.returncode == 2, summary
    assert "--base-url" in summary["reason"]
    reopened = Ledger(ledger)
    statuses = {j.status for j in reopened.iter_jobs()}
    reopened.close()
    assert statuses <= {"pending"}, statuses


def test_a_200_html_page_on_generate_is_not_resent_round_after_round(tmp_path: Path) -> None:
    from tests.test_campaign_ids import run_args

    jobs = contacts(tmp_path / "contacts.csv", 2)
    posts: Counter[str] = Counter()
    page = (
        "<!DOCTYPE html>\n<html>\n<head><title>Proxy login required</title></head>\n"
        "<body><h1>Sign in</h1><p>Your session has expired.</p></body>\n</html>\n"
    )

    async def portal(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        posts[str(body.get("callback_id"))] += 1
        return web.Response(text=page, content_type="text/html")

    with threaded_sandbox(portal) as (url, _state):
        args = run_args(jobs, tmp_path / "l.db", url, "--json")
        done = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
    _, by_key = jobs_of(tmp_path / "l.db")
    for record in by_key.values():
        assert "<" not in (record.error or ""), record.error
    assert max(posts.values()) <= 2, (posts, done.stdout)
    # The page is not HeyGen's API: the run stops naming the address and the page's title.
    summary = json.loads(done.stdout)
    assert done.returncode == 2, summary
    assert "--base-url" in summary["reason"]
    assert "Proxy login required" in summary["reason"]
    # A gateway may have forwarded a request before answering with its page: a job that
    # met the page is uncertain (for reconcile), one never sent is pending.
    statuses = {key: record.status for key, record in by_key.items()}
    assert set(statuses.values()) <= {"uncertain", "pending"}, statuses
    sent = {key for key, record in by_key.items() if record.attempts}
    assert sent, statuses
    assert all(statuses[key] == "uncertain" for key in sent), statuses


def test_a_template_test_flag_then_a_real_run_on_one_ledger_makes_real_videos(
    tmp_path: Path,
) -> None:
    jobs = contacts(tmp_path / "contacts.csv", 2)
    data = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    data["test"] = True
    trial = tmp_path / "trial.json"
    trial.write_text(json.dumps(data), encoding="utf-8")
    ledger = tmp_path / "contacts.ledger.db"
    with threaded_sandbox() as (url, state):
        first = run_keyed(jobs, trial, ledger, url)
        second = run_keyed(jobs, DEMO_TEMPLATE, ledger, url)
        real = [v for v in state.videos.values() if not v.test]
    assert first.returncode == 0, first.stderr
    assert second.returncode == 2 or len(real) == 2, (second.returncode, second.stderr)
    # Refused, naming a ledger of its own for the real run.
    assert "holds test videos" in second.stderr
    assert f"--ledger {tmp_path / 'contacts.real.ledger.db'}" in second.stderr


def test_the_template_test_flag_is_a_test_run_whatever_the_command_line_says(
    tmp_path: Path,
) -> None:
    """--test-videos, then the same campaign with "test": true in the template: both test
    videos, so the second run goes on; its dry run against a real ledger is refused."""
    jobs = contacts(tmp_path / "contacts.csv", 2)
    data = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    data["test"] = True
    trial = tmp_path / "trial.json"
    trial.write_text(json.dumps(data), encoding="utf-8")
    ledger = tmp_path / "contacts.ledger.db"
    real_ledger = tmp_path / "real.ledger.db"
    with threaded_sandbox() as (url, state):
        flagged = run_keyed(jobs, DEMO_TEMPLATE, ledger, url, "--test-videos")
        templated = run_keyed(jobs, trial, ledger, url)
        real = run_keyed(jobs, DEMO_TEMPLATE, real_ledger, url)
        dry = run_keyed(jobs, trial, real_ledger, url, "--dry-run")
        made = [v.test for v in state.videos.values()]
    assert flagged.returncode == 0, flagged.stderr
    assert templated.returncode == 0, templated.stderr
    assert real.returncode == 0, real.stderr
    assert dry.returncode == 2, dry.stderr
    assert "holds real videos" in dry.stderr
    assert sorted(made) == [False, False, True, True]


# --- the same holes, closer to the code ---------------------------------------------------


def _rows(tmp_path: Path, data: bytes, delimiter: str | None = None) -> JobsSource:
    path = tmp_path / "jobs.csv"
    path.write_bytes(data)
    finished(path)
    with open_rows(str(path), JobsFormat.CSV, delimiter) as source:
        return JobsSource(iter(list(source.rows)), source.header, source.delimiter)


def test_a_repeated_header_is_skipped_with_a_notice_and_later_lines_keep_their_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"id,name\n1,Ava\n\xef\xbb\xbf id , name \n2,Liam\nid,name,\n3,Zoe\n"
    source = _rows(tmp_path, data)
    rows = list(source.rows)
    assert [(r.line, r.values["id"], r.error) for r in rows] == [
        (2, "1", None),
        (4, "2", None),
        (6, "3", None),
    ]
    notices = [r.getMessage() for r in caplog.records if "repeats the header" in r.getMessage()]
    assert [n.split(": ")[1] for n in notices] == [
        "line 3 repeats the header row; skipped.",
        "line 5 repeats the header row; skipped.",
    ]


def test_a_row_that_only_starts_like_the_header_is_a_row(tmp_path: Path) -> None:
    rows = list(_rows(tmp_path, b"id,name\nid,Ava\n").rows)
    assert [(r.line, r.values) for r in rows] == [(2, {"id": "id", "name": "Ava"})]


def test_a_sep_line_names_the_delimiter_and_line_numbers_count_it(tmp_path: Path) -> None:
    source = _rows(tmp_path, b"sep=;\r\nid;name\r\n1;Ava, Jr\r\n2;Liam;extra\r\n")
    assert source.delimiter == ";"
    assert source.header == ["id", "name"]
    rows = list(source.rows)
    assert [(r.line, r.values["name"]) for r in rows] == [(3, "Ava, Jr"), (4, "Liam")]
    assert rows[0].error is None
    assert rows[1].error is not None


def test_a_sep_line_and_the_same_delimiter_flag_agree(tmp_path: Path) -> None:
    source = _rows(tmp_path, b"sep=\t\nid\tname\n1\tAva\n", delimiter="\t")
    assert source.header == ["id", "name"]


@pytest.mark.parametrize(
    ("data", "delimiter", "message"),
    [
        (b"sep=;\nid;name\n", ",", "'sep=;' says the file is semicolon-separated, but --delim"),
        (b"sep=:\nid:name\n", None, "'sep=:' names a delimiter heygen-batch does not read"),
    ],
)
def test_a_sep_line_the_run_cannot_follow_is_refused(
    tmp_path: Path, data: bytes, delimiter: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _rows(tmp_path, data, delimiter)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"id\tName, given\n1\tAnn\n", "\t"),  # the record splits on tabs as the header does
        (b"id,Name\tgiven\n1,Ann\n", ","),  # ... and here on commas
        (b"id;a,b\n1;x\n", ";"),
        (b"id\tName, given\n1\n", ","),  # a record fitting neither: the preference order
        (b"id\tName, given\n", ","),  # no record at all
    ],
)
def test_a_tie_on_the_header_is_settled_by_the_first_record(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    assert _rows(tmp_path, data).delimiter == expected


def test_a_file_just_written_cut_inside_a_character_leaves_its_last_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"id,name\n1,Ava\n2,Zo\xc3")
    with open_rows(str(path), JobsFormat.CSV) as source:
        rows = list(source.rows)
    assert [r.values for r in rows] == [{"id": "1", "name": "Ava"}]
    assert any("line 3 is cut off" in r.getMessage() for r in caplog.records)


async def test_an_address_aiohttp_cannot_make_a_request_to_was_never_sent() -> None:
    async with HeyGenClient("http://127.0.0.1:99999", None) as client:
        with pytest.raises(RequestNotMade) as caught:
            await client.create_video({"video_inputs": []})
    assert caught.value.maybe_sent is False
    assert next_step(caught.value) is Step.RETRY


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://:8080", "names no host"),
        ("http://127.0.0.1:0", "port 0"),
        ("ftp://example.com", "must start with http:// or https://"),
        ("https://api.heygen.com\r\n", "control character"),
    ],
)
def test_a_base_url_no_request_can_be_made_to_is_refused_when_resolved(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("HEYGEN_API_KEY", "sk-any")
    with pytest.raises(ConfigError, match=f"--base-url .*{re.escape(message)}"):
        resolve_service(url, sandbox=False)


@pytest.mark.parametrize("bad", ["\x7f", "\r\n", "\x1b", "é"])
def test_an_api_key_no_header_can_carry_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("HEYGEN_API_KEY", f"sk-secret{bad}key")
    with pytest.raises(ConfigError, match="HEYGEN_API_KEY holds U\\+") as caught:
        resolve_service(None, sandbox=False)
    assert "secret" not in str(caught.value)


async def test_a_200_page_on_generate_is_a_wrong_address_and_a_200_json_is_uncertain(
    http: FixedAioresponses,
) -> None:
    url = "http://heygen.test" + GENERATE_PATH
    http.post(url, body=b"<html><title>Sign in</title></html>", content_type="text/html")
    http.post(url, body=b"Service moved", content_type="text/plain")
    http.post(url, payload={"data": {}})
    errors = []
    async with HeyGenClient("http://heygen.test", "sk-any") as client:
        for _ in range(3):
            with pytest.raises(EngineError) as caught:
                await client.create_video({"video_inputs": []})
            errors.append(caught.value)
    page, text, json_answer = errors
    assert isinstance(page, WrongAddress)
    assert page.message == "Sign in"
    assert isinstance(text, WrongAddress)
    assert text.message == "Service moved"
    assert [next_step(e) for e in (page, text)] == [Step.ABORT, Step.ABORT]
    assert isinstance(json_answer, UnreadableAnswer)
    assert next_step(json_answer) is Step.UNCERTAIN


def test_a_cut_character_holds_its_record_back_even_once_the_file_looks_finished(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"id,name\n1,Ava\n2,Zo\xc3")
    with open_rows(str(path), JobsFormat.CSV) as source:
        finished(path)  # a slow read: by its end the file is no longer recent
        rows = list(source.rows)
    assert [r.values["id"] for r in rows] == ["1"]
    assert any("inside a UTF-8 character" in r.getMessage() for r in caplog.records)


def test_one_keyed_ledger_takes_one_kind_of_video_from_the_bodies(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    try:
        fresh = KindGuard(ledger, ledger)
        fresh.check({"test": True})
        fresh.check({"test": True})
        with pytest.raises(ConfigError, match="holds test videos and this run sends real ones"):
            fresh.check({"video_inputs": []})
        ledger.transaction([set_videos("real")])
        with pytest.raises(ConfigError, match=r"--ledger .*l\.test\.ledger\.db"):
            KindGuard(ledger, ledger).check({"test": True})
        KindGuard(ledger, ledger).check({"test": False})
    finally:
        ledger.close()


_NAMED_TEMPLATE = """\
title: "Hello {{ name }}"
video_inputs:
  - character: {type: avatar, avatar_id: a1, avatar_style: normal}
    voice: {type: text, voice_id: v1, input_text: "Hi {{ name }}"}
"""


def test_a_header_repeated_in_another_case_or_order_is_no_contact(tmp_path: Path) -> None:
    """Two exports joined: a header in another case is skipped, and one in another column
    order is followed, so the rows after it keep their own columns."""
    template = tmp_path / "t.yaml"
    template.write_text(_NAMED_TEMPLATE, encoding="utf-8")
    jobs = tmp_path / "joined.csv"
    jobs.write_text(
        "email,name\na@x.com,Ann\nEmail,Name\nb@x.com,Bob\nname,email\nCy,c@x.com\n",
        encoding="utf-8",
    )
    ledger = tmp_path / "l.db"
    args = [sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template)]
    args += ["--key-column", "email", "--ledger", str(ledger), "--sandbox", "--no-progress"]
    done = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)

    assert done.returncode == 0, done.stderr
    assert "line 3 repeats the header row; skipped" in done.stderr
    assert "line 5 repeats the header in another column order" in done.stderr
    _, by_key = jobs_of(ledger)
    assert {k: (r.status, r.line, r.source["name"]) for k, r in by_key.items()} == {
        "a@x.com": ("submitted", 2, "Ann"),
        "b@x.com": ("submitted", 4, "Bob"),
        "c@x.com": ("submitted", 6, "Cy"),
    }


def test_a_success_answered_with_a_page_is_not_taken_for_not_sent(tmp_path: Path) -> None:
    """A gateway that forwarded the request, then answered with its own page: the job is
    uncertain, and the next run finds the video instead of paying for a second."""
    from tests.test_campaign_ids import run_args

    jobs = contacts(tmp_path / "contacts.csv", 1)
    ledger = tmp_path / "contacts.ledger.db"
    pages: Counter[str] = Counter()

    async def gateway_page(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        if pages["sent"]:
            return None
        pages["sent"] += 1
        await handler(request)  # forwarded: the service made the video
        return web.Response(text="<html><title>Gateway</title></html>", content_type="text/html")

    with threaded_sandbox(gateway_page) as (url, state):
        args = run_args(jobs, ledger, url, "--concurrency", "1", "--json")
        first = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        _, after_first = jobs_of(ledger)
        second = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        created = dict(state.counters.created_by_callback_id)

    assert first.returncode == 2, first.stdout
    assert [r.status for r in after_first.values()] == ["uncertain"]
    assert second.returncode == 0, second.stdout
    assert list(created.values()) == [1], created
