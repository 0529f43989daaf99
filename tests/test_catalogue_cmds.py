"""avatars and voices: what the account can use, from the service or the sandbox."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli
from engine.sandbox import SandboxConfig
from tests.conftest import DEMO_TEMPLATE, FixedAioresponses
from tests.threaded_sandbox import threaded_sandbox

KEY = "sk-catalogue-0123456789abcdef"
BASE = "https://api.example.test"


def invoke(*args: str, key: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"HEYGEN_API_KEY": key, "HEYGEN_BASE_URL": None})


def test_the_sandbox_lists_the_demo_avatar_and_voice() -> None:
    template = json.loads(DEMO_TEMPLATE.read_text(encoding="utf-8"))
    character = template["video_inputs"][0]["character"]["avatar_id"]
    voice = template["video_inputs"][0]["voice"]["voice_id"]

    listed = invoke("avatars", "--sandbox")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0].split() == ["avatar_id", "gender", "name"]
    assert any(line.split()[0] == character for line in listed.stdout.splitlines())
    assert "talking_photo_id" in listed.stdout

    answer = json.loads(invoke("avatars", "--sandbox", "--json").stdout)
    assert character in {a["avatar_id"] for a in answer["avatars"]}
    assert all(p["talking_photo_id"] for p in answer["talking_photos"])

    voices = json.loads(invoke("voices", "--sandbox", "--json").stdout)
    ours = next(v for v in voices["voices"] if v["voice_id"] == voice)
    assert ours["language"] == "English"
    assert ours["gender"] == "male"
    assert {v["language"] for v in voices["voices"]} >= {"English", "French"}
    text = invoke("voices", "--sandbox").stdout
    assert text.splitlines()[0].split() == ["voice_id", "language", "gender", "name"]
    assert "Léa - Calme" in text


@pytest.mark.parametrize("command", ["avatars", "voices"])
def test_no_key_and_no_sandbox_names_both(command: str) -> None:
    result = invoke(command)
    assert result.exit_code == 2
    assert "HEYGEN_API_KEY" in result.output
    assert "--sandbox" in result.output


@pytest.mark.parametrize("command", ["avatars", "voices"])
def test_the_key_is_sent_and_never_shown(command: str) -> None:
    with threaded_sandbox(config=SandboxConfig(api_key=KEY)) as (base_url, _):
        good = invoke(command, "--base-url", base_url, key=KEY)
        refused = invoke(command, "--base-url", base_url, "--json", key=KEY + "-wrong")
    assert good.exit_code == 0, good.output
    assert refused.exit_code == 3
    assert json.loads(refused.stdout)["exit_code"] == 3
    assert "HEYGEN_API_KEY" in refused.output
    for result in (good, refused):
        assert KEY not in result.output


def test_real_answers_with_extra_and_missing_fields_are_read(http: FixedAioresponses) -> None:
    http.get(
        f"{BASE}/v2/voices",
        payload={
            "error": None,
            "data": {
                "voices": [
                    {"voice_id": "v1", "language": "German", "name": "Jonas", "new_field": 1},
                    {"voice_id": "v2"},
                ]
            },
        },
    )
    result = invoke("voices", "--base-url", BASE, key=KEY)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["v1", "German", "-", "Jonas"]
    assert lines[2].split() == ["v2", "-", "-", "-"]


def test_an_address_without_the_endpoint_names_the_base_url(http: FixedAioresponses) -> None:
    http.get(f"{BASE}/v2/avatars", status=404, body="<html><title>Not Found</title></html>")
    result = invoke("avatars", "--base-url", BASE, key=KEY)
    assert result.exit_code == 2
    assert "--base-url" in result.output


def test_an_address_that_cannot_be_reached_names_the_base_url() -> None:
    result = invoke("voices", "--base-url", "http://127.0.0.1:9", key=KEY)
    assert result.exit_code == 2
    assert "--base-url" in result.output
