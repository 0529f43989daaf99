"""The ``heygen-batch`` command line: one module per command."""

from __future__ import annotations

import gc
import logging

import click

from engine.cli.catalogue_cmds import avatars, voices
from engine.cli.delivery_cmds import download, webhook
from engine.cli.export_cmd import export
from engine.cli.preview_cmd import preview_command
from engine.cli.report_cmd import report
from engine.cli.run_cmd import run
from engine.cli.sandbox_cmd import sandbox
from engine.cli.scale_cmds import enqueue, worker
from engine.cli.schema_cmd import schema
from engine.cli.service_cmds import poll, reconcile_command
from engine.cli.status_cmd import status
from engine.cli.validate_cmd import validate


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Each command's --help ends with its exit codes, the environment it reads and "
    "an example. The whole interface (commands, exit codes, environment, files, ledger "
    "and export columns) is in docs/interface.md.",
)
@click.version_option(package_name="heygen-batch")
@click.option("-v", "--verbose", is_flag=True, help="More detail in the logs (stderr).")
def cli(verbose: bool) -> None:
    """One personalised HeyGen avatar video per row of a CSV or JSONL file.

    Start with `heygen-batch run jobs/demo.csv --template jobs/demo-template.json
    --key-column contact_id --sandbox`: --key-column names the column that identifies
    a contact, so a row edited later is the same job, never a second paid video.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
    )


for command in (
    run,
    validate,
    poll,
    reconcile_command,
    download,
    export,
    report,
    webhook,
    schema,
    sandbox,
    status,
    enqueue,
    worker,
    preview_command,
    avatars,
    voices,
):
    cli.add_command(command)


#: Allocations between young-generation collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def main() -> None:
    quiet_collector()
    cli(prog_name="heygen-batch")


def quiet_collector() -> None:
    """Keep the cyclic garbage collector off the hot path of a bulk run.

    A run allocates a few dozen objects per row, nearly all freed by reference
    counting, yet every 700 allocations the collector wakes, and every few
    thousand it walks the ~50,000 long-lived objects that pydantic, aiohttp and
    click load at start-up: measured, a tenth of a 20,000-row run's CPU. Those
    are frozen out of collection (after one collection, so no garbage is frozen
    with them) and young objects are collected less often. Only for the real
    process: tests call ``cli`` directly and keep Python's defaults.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
