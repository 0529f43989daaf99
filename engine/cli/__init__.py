"""The ``heygen-batch`` command line: one module per command."""

from __future__ import annotations

import logging

import click

from engine.cli.export_cmd import export
from engine.cli.run_cmd import run
from engine.cli.sandbox_cmd import sandbox
from engine.cli.schema_cmd import schema
from engine.cli.service_cmds import poll, reconcile_command
from engine.cli.validate_cmd import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="heygen-batch")
@click.option("-v", "--verbose", is_flag=True, help="More detail in the logs (stderr).")
def cli(verbose: bool) -> None:
    """One personalised HeyGen avatar video per row of a CSV or JSONL file.

    Start with `heygen-batch run jobs/demo.csv --template jobs/demo-template.json --sandbox`.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
    )


for command in (run, validate, poll, reconcile_command, export, schema, sandbox):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="heygen-batch")
