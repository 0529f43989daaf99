"""``heygen-batch schema``: the request's JSON Schema, for users' own tools."""

from __future__ import annotations

import json

import click

from engine.cli.errors import epilog
from engine.request import request_json_schema


@click.command(
    epilog=epilog(
        "Exit codes: 0 printed. Nothing is sent: no key is needed.",
        "heygen-batch schema > v2-request.schema.json",
    )
)
def schema() -> None:
    """Print the JSON Schema of a Create Avatar Video (V2) request body."""
    click.echo(json.dumps(request_json_schema(), indent=2))
