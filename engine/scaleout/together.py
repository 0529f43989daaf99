"""``run JOBS --ledger postgresql://...``: ``enqueue``, then one worker on that campaign
alone, in one process. Workers on other hosts may serve the campaign meanwhile, so
the run sends nothing but what it claims, under its lease, as they do."""

from __future__ import annotations

import asyncio
from dataclasses import fields

from engine.errors import ConfigError
from engine.ledger.open import open_ledger
from engine.ledger.postgres.campaigns import name_from_jobs
from engine.ledger.triage import RowCounts
from engine.prepare import Preparer
from engine.reader import JobsFormat
from engine.run_report import RunReport
from engine.scaleout.enqueue import enqueue
from engine.scaleout.worker import serve
from engine.scaleout.worker_report import WorkerOptions


def refuse_options(given: dict[str, bool]) -> None:
    """Options a run on a PostgreSQL ledger does not take: ConfigError (exit 2) naming
    those ``given`` (option -> whether it was)."""
    named = [option for option, on in given.items() if on]
    if named:
        raise ConfigError(
            f"{', '.join(named)}: not available with a PostgreSQL ledger; leave "
            f"{'it' if len(named) == 1 else 'them'} out, or run with a ledger file."
        )


def enqueue_and_work(
    *,
    jobs: str,
    file_format: JobsFormat,
    delimiter: str | None,
    preparer: Preparer,
    salt: bytes,
    url: str,
    campaign: str | None,
    key_env: str | None,
    worker: WorkerOptions,
    strict: bool,
) -> RunReport:
    """Load ``jobs`` into ``campaign`` (default: named after the file), then serve it
    with ``worker``'s options; what both did, as a ``RunReport``.

    Raises ConfigError (exit 2); and, when the worker stopped for the database, why
    (``LeaseLost``, ``LedgerUnavailable``: exit 75).
    """
    name = campaign or name_from_jobs(jobs)
    opened = open_ledger(url, campaign=name, create=True, key_env=key_env)
    try:
        loaded = enqueue(opened, jobs, file_format, preparer, salt, delimiter)
    finally:
        opened.close()
    worker.url = url
    worker.campaigns = (name,)
    worked = asyncio.run(serve(worker))
    if worked.stopped is not None:
        raise worked.stopped
    report = RunReport(ledger=loaded.ledger, strict=strict, delimiter=loaded.delimiter)
    for counted in fields(RowCounts):
        setattr(report, counted.name, getattr(loaded, counted.name))
    report.add_sends(worked.stats)
    report.reconciled_found = worked.reconciled_found
    report.reconciled_absent = worked.reconciled_absent
    report.abort = worked.abort
    report.interrupted = worked.interrupted
    report.wait = worked.wait
    report.counts = worked.counts.get(name, {})
    report.elapsed_s = loaded.elapsed_s + worked.elapsed_s
    return report
