"""``heygen-batch schema``: the request's JSON Schema, for users' own tools."""

from __future__ import annotations

import json

import click

from engine.request import request_json_schema
from engine.request.v3 import v3_request_json_schema

_SCHEMAS = {"v2": request_json_schema, "v3": v3_request_json_schema}


@click.command()
@click.option(
    "--api",
    type=click.Choice(sorted(_SCHEMAS)),
    default="v2",
    show_default=True,
    help="Which body: v2 (POST /v2/video/generate) or v3 (POST /v3/videos).",
)
def schema(api: str) -> None:
    """Print the JSON Schema of a Create Avatar Video request body (V2 or v3)."""
    click.echo(json.dumps(_SCHEMAS[api](), indent=2))
