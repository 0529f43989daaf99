"""``heygen-batch schema``: the request's JSON Schema, for users' own tools."""

from __future__ import annotations

import json

import click

from engine.request import request_json_schema


@click.command()
def schema() -> None:
    """Print the JSON Schema of a Create Avatar Video (V2) request body."""
    click.echo(json.dumps(request_json_schema(), indent=2))
