"""``heygen-batch schema [--api v2|v3]``: the JSON Schema of the chosen request body."""

from __future__ import annotations

import json

from click.testing import CliRunner

from engine.cli import cli
from engine.request import request_json_schema
from engine.request.v3 import v3_request_json_schema


def test_schema_prints_the_v2_body_by_default() -> None:
    result = CliRunner().invoke(cli, ["schema"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == request_json_schema()
    assert "video_inputs" in json.loads(result.stdout)["properties"]


def test_schema_api_v2_is_the_default_spelt_out() -> None:
    assert CliRunner().invoke(cli, ["schema", "--api", "v2"]).stdout == (
        CliRunner().invoke(cli, ["schema"]).stdout
    )


def test_schema_api_v3_prints_the_v3_union_by_type() -> None:
    result = CliRunner().invoke(cli, ["schema", "--api", "v3"])

    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed == v3_request_json_schema()
    assert set(printed["discriminator"]["mapping"]) == {
        "avatar",
        "image",
        "studio",
        "cinematic_avatar",
    }


def test_schema_refuses_an_unknown_api_with_exit_2() -> None:
    result = CliRunner().invoke(cli, ["schema", "--api", "v1"])

    assert result.exit_code == 2
    assert "'v1' is not one of 'v2', 'v3'" in result.output
