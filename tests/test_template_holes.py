"""Holes an adversarial review of issues 12 and 17 found in templates and callback_ids:
a template's own callback_id without the campaign id, two jobs sent with one callback_id,
control characters in the template's own text, and cells of invisible characters."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.errors import ConfigError, Reason
from engine.ledger.store import Ledger
from engine.ledger.triage import Triage, Verdict
from engine.prepare import Preparer, Repeats
from engine.reader import Row
from engine.template import compile_template
from engine.template.cells import is_blank
from tests.conftest import DEMO_TEMPLATE
from tests.test_campaign_ids import contacts, jobs_of
from tests.test_crash_resume import cli_env
from tests.test_ledger_triage import SALT, TEMPLATE, sent_as
from tests.threaded_sandbox import (
    Handler,
    created_per_callback,
    drop_before,
    run_keyed,
    threaded_sandbox,
)


def _template_with_callback(path: Path, callback: str) -> Path:
    data = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    data["callback_id"] = callback
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _validate(jobs: Path, template: Path | None, *extra: str) -> Any:
    args = [sys.executable, "-m", "engine", "validate", str(jobs)]
    if template is not None:
        args += ["--template", str(template)]
    return subprocess.run(
        [*args, *extra], capture_output=True, text=True, env=cli_env(), timeout=60
    )


# --- 1. a template's own callback_id carries the campaign id -------------------------------


def test_template_callback_id_test_run_then_real_run_never_borrows_the_test_video(
    tmp_path: Path,
) -> None:
    """A --test-videos run into one ledger, then the real run into another: the real
    c-002, dropped before creation, must not be reconciled to the test video."""
    jobs = contacts(tmp_path / "contacts.csv", 3)
    template = _template_with_callback(tmp_path / "t.json", "{{ contact_id }}-spring")
    seen: Counter[str] = Counter()

    async def lose_real_c002(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        callback = str(body.get("callback_id", ""))
        if not body.get("test") and "c-002" in callback:
            seen[callback] += 1
            if seen[callback] == 1:
                return await drop_before(request, handler)
        return None

    with threaded_sandbox(lose_real_c002) as (url, state):
        trial = run_keyed(jobs, template, tmp_path / "trial.ledger.db", url, "--test-videos")
        run_keyed(jobs, template, tmp_path / "real.ledger.db", url)

    assert trial.returncode == 0, trial.stderr
    trial_campaign, trial_jobs = jobs_of(tmp_path / "trial.ledger.db")
    real_campaign, real_jobs = jobs_of(tmp_path / "real.ledger.db")
    c002 = real_jobs["c-002"]
    # The real ledger must never hold the trial's (test, free, low-quality) video.
    assert c002.video_id != trial_jobs["c-002"].video_id
    real_videos = [v for v in state.videos.values() if not v.test]
    assert len(real_videos) == 3, "every real contact gets one real video"
    # The template's callback_id is sent behind each ledger's own campaign id.
    assert trial_jobs["c-001"].callback_id == f"{trial_campaign}:c-001-spring"
    assert real_jobs["c-001"].callback_id == f"{real_campaign}:c-001-spring"


def _own_callback_preparer() -> Preparer:
    return Preparer(compile_template({**TEMPLATE, "callback_id": "crm-{{ crm }}"}), "id")


def test_a_job_sent_with_the_templates_bare_callback_id_is_not_taken_for_changed(
    tmp_path: Path,
) -> None:
    """Sent before the campaign id was added to a template's callback_id: the same row
    is the same request; a changed callback_id cell is a changed request."""
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        job = Triage(None, _own_callback_preparer(), SALT).sort([Row(1, _cells("1"))])[0].job
        assert job is not None
        assert job.body is not None
        assert job.body["callback_id"] == "crm-1"  # no ledger, no campaign id
        sent_as(ledger, "a", job.body, "submitted")
        same, edited = (
            Triage(ledger, _own_callback_preparer(), SALT).sort([Row(1, _cells(crm))])[0]
            for crm in ("1", "2")
        )
        campaign = ledger.campaign_id
    assert same.job is not None
    assert same.job.callback_id == f"{campaign}:crm-1"
    assert (same.verdict, same.changed) == (Verdict.ALREADY_DONE, False)
    assert (edited.verdict, edited.changed) == (Verdict.ALREADY_DONE, True)


def test_a_foreign_callback_id_is_still_a_changed_request(tmp_path: Path) -> None:
    """Only the template's own bare value is forgiven, not any other callback_id."""
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        job = Triage(None, _own_callback_preparer(), SALT).sort([Row(1, _cells("1"))])[0].job
        assert job is not None
        assert job.body is not None
        sent_as(ledger, "a", {**job.body, "callback_id": "crm-9"}, "submitted")
        again = Triage(ledger, _own_callback_preparer(), SALT).sort([Row(1, _cells("1"))])[0]
    assert again.changed


def _cells(crm: str, name: str = "A") -> dict[str, str]:
    return {"id": "a", "name": name, "crm": crm}


def test_a_body_hash_key_does_not_change_with_the_campaign_id() -> None:
    template = compile_template({**TEMPLATE, "callback_id": "crm-{{ crm }}"})
    bare = Preparer(template).prepare(Row(1, _cells("1")))
    with_campaign = Preparer(template, campaign="0a1b2c3d4e5f").prepare(Row(1, _cells("1")))
    assert bare.key == with_campaign.key
    assert with_campaign.callback_id == "0a1b2c3d4e5f:crm-1"
    assert with_campaign.own_callback == "crm-1"


# --- 2. two jobs are never sent with one callback_id ------------------------------------------


def test_callback_id_made_constant_by_a_fallback_is_not_sent_for_two_jobs(
    tmp_path: Path,
) -> None:
    jobs = contacts(tmp_path / "contacts.csv", 2)
    template = _template_with_callback(tmp_path / "t.json", '{{ campaign | default("spring") }}')
    done, created = created_per_callback(jobs, template, tmp_path, "--key-column", "contact_id")
    assert all(count == 1 for count in created.values()), (done.returncode, created)
    assert done.returncode == 2
    assert "default(...) fallback" in done.stderr


@pytest.mark.parametrize(
    "callback",
    ['{{ crm | default("x") }}', 'crm-{{ crm | default("") }}', "{{ a }}-{{ b | default('') }}"],
)
def test_a_fallback_in_a_callback_id_is_refused_at_load(callback: str) -> None:
    with pytest.raises(ConfigError, match=r"has a default\(\.\.\.\) fallback"):
        compile_template({**TEMPLATE, "callback_id": callback}, "t.json")


def test_a_blank_fallback_for_the_whole_callback_id_leaves_it_to_the_engine() -> None:
    """Not constant: a row with an empty cell gets the engine's callback_id."""
    template = compile_template({**TEMPLATE, "callback_id": "{{ crm | default('') }}"})
    job = Preparer(template, "id", campaign="0a1b2c3d4e5f").prepare(Row(1, _cells("")))
    assert job.callback_id == "0a1b2c3d4e5f:a"
    assert job.engine_callback


def test_callback_id_repeated_across_rows_is_not_sent_for_two_jobs(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(
        "contact_id,first_name,last_name,company,city,product,speed\n"
        "c-1,Ann,A,Acme,Oslo,X,1.0\n"
        "c-2,Ann,B,Acme,Oslo,X,1.0\n",
        encoding="utf-8",
    )
    template = _template_with_callback(tmp_path / "t.json", "{{ first_name }}")
    done, created = created_per_callback(jobs, template, tmp_path, "--key-column", "contact_id")
    assert all(count == 1 for count in created.values()), (done.returncode, created)
    assert len(created) == 1
    assert "line 3: invalid: callback_id: callback_id 'Ann' is the same as line 2's" in (
        done.stdout + done.stderr
    )

    # validate and the dry run say the same, naming the earlier line.
    checked = _validate(jobs, template, "--key-column", "contact_id", "--json")
    assert checked.returncode == 1
    rows = [json.loads(line) for line in checked.stdout.splitlines()]
    assert [r["ok"] for r in rows[:2]] == [True, False]
    assert rows[1]["errors"][0]["field"] == "callback_id"
    assert "same as line 2's" in rows[1]["errors"][0]["message"]
    assert rows[2]["summary"]["invalid_by_reason"] == {"duplicate": 1}
    dry = subprocess.run(
        [
            sys.executable, "-m", "engine", "run", str(jobs), "--template", str(template),
            "--key-column", "contact_id", "--ledger", str(tmp_path / "dry.db"),
            "--dry-run", "--json",
        ],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    summary = json.loads(dry.stdout.splitlines()[-1])
    assert (summary["new"], summary["invalid"]) == (1, 1), summary
    assert summary["invalid_by_reason"] == {"duplicate": 1}


def test_jsonl_bodies_with_one_callback_id_are_not_sent_for_two_jobs(tmp_path: Path) -> None:
    body: dict[str, Any] = {
        "callback_id": "spring",
        "video_inputs": [
            {
                "character": {"type": "avatar", "avatar_id": "a1", "avatar_style": "normal"},
                "voice": {"type": "text", "input_text": "Hi", "voice_id": "v1"},
            }
        ],
    }
    jobs = tmp_path / "bodies.jsonl"
    lines = []
    for text in ("Hi Ann", "Hi Bob"):
        body["video_inputs"][0]["voice"]["input_text"] = text
        lines.append(json.dumps(body))
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done, created = created_per_callback(jobs, None, tmp_path)
    assert all(count == 1 for count in created.values()), (done.returncode, created)
    assert len(created) == 1


def test_a_repeat_of_an_already_done_job_is_refused_but_the_done_job_is_left_alone() -> None:
    """A row not sent this time still claims its callback_id for the rows after it."""
    template = compile_template({**TEMPLATE, "callback_id": "crm-{{ crm }}"})
    preparer = Preparer(template, "id")
    repeats = Repeats()
    first = preparer.prepare(Row(2, {**_cells("1"), "id": "a"}))
    second = preparer.prepare(Row(3, {**_cells("1"), "id": "b"}))
    assert repeats.callback_checked(first, refuse=False) is first
    refused = repeats.callback_checked(second)
    assert not refused.valid
    assert refused.reason is Reason.DUPLICATE
    assert "same as line 2's" in refused.error_text


# --- 3. control characters in the template's own text --------------------------------------


def test_control_characters_in_the_templates_own_text_are_refused(tmp_path: Path) -> None:
    data = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    data["title"] = 'Welcome\u0085{{ first_name | default("x\u0000") }}'
    data["video_inputs"][0]["voice"]["input_text"] = "Hi\u001b[31m {{ first_name }}"
    template = tmp_path / "t.json"
    template.write_text(json.dumps(data), encoding="utf-8")
    jobs = contacts(tmp_path / "contacts.csv", 1)
    done = _validate(jobs, template)
    assert done.returncode == 2, done.stdout
    assert "U+001B" in done.stderr
    # Every one is named, with its field path.
    assert "title: U+0085 (NEL)" in done.stderr
    assert "video_inputs[0].voice.input_text: U+001B (ESC)" in done.stderr


def test_the_templates_own_text_obeys_the_rule_for_cells() -> None:
    spoken = {**TEMPLATE, "video_inputs": [{**TEMPLATE["video_inputs"][0]}]}
    spoken["video_inputs"][0]["voice"] = {
        "type": "text", "voice_id": "v1", "input_text": "Hi\t{{ name }},\r\nwelcome",
    }  # fmt: skip
    compile_template(spoken)  # tab and line breaks are fine in spoken text
    with pytest.raises(ConfigError, match=r"title: U\+0009 \(HT\)"):
        compile_template({**TEMPLATE, "title": "A\tB"})
    with pytest.raises(ConfigError, match=r"the key 'x\\x07': U\+0007 \(BEL\)"):
        compile_template({**TEMPLATE, "x\u0007": "y"})


# --- 4. a cell of invisible characters is blank ---------------------------------------------


def test_a_cell_of_only_invisible_characters_is_blank(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(
        "contact_id,first_name,last_name,company,city,product,speed\n"
        "c-1,\u200b,A,Acme,Oslo,X,1.0\n"
        "c-2,\u2060\u200b,B,Acme,Oslo,X,1.0\n",
        encoding="utf-8",
    )
    done = _validate(jobs, DEMO_TEMPLATE, "--key-column", "contact_id", "--json")
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert summary["invalid_by_reason"].get("empty_cell") == 2, summary


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        (" \t", True),
        ("\u200b", True),
        ("\ufeff \u00ad", True),
        ("\u2060\u3000", True),
        ("Ann", False),
        ("\u200bAnn", False),
        ("\u00a0x", False),
    ],
)
def test_blank_is_whitespace_and_format_characters_only(text: str, blank: bool) -> None:
    assert is_blank(text) is blank


def test_a_key_cell_of_invisible_characters_is_a_missing_key() -> None:
    template = compile_template(TEMPLATE)
    job = Preparer(template, "id").prepare(Row(1, {"id": "\u200b", "name": "A"}))
    assert job.reason is Reason.MISSING_KEY


# --- smaller: clearer refusals ----------------------------------------------------------------


@pytest.mark.parametrize("fallback", ['default("a}b")', "default('{x}')"])
def test_a_brace_in_a_fallback_is_named_as_the_cause(fallback: str) -> None:
    with pytest.raises(ConfigError, match="a default text cannot hold"):
        compile_template({**TEMPLATE, "title": f"Hi {{{{ name | {fallback} }}}}"})
