"""``heygen-batch schema``: the request's JSON Schema, for users' own tools."""

from __future__ import annotations

import json

import click

from engine.request import request_json_schema


@click.command()
@click.option(
    "--api",
    type=click.Choice(["v2", "v3"]),
    default="v2",
    show_default=True,
    help="Which body: v2 (POST /v2/video/generate) or v3 (POST /v3/videos).",
)
def schema(api: str) -> None:
    """Print the JSON Schema of a Create Avatar Video request body (V2 or v3)."""
    if api == "v2":
        click.echo(json.dumps(request_json_schema(), indent=2))
        return
    # Imported here: building the v3 models would otherwise slow every command's start.
    from engine.request.v3 import v3_request_json_schema

    click.echo(json.dumps(v3_request_json_schema(), indent=2))
