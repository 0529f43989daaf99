"""The batching writer: durable before a send, one commit for many jobs."""

from __future__ import annotations

import asyncio
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.campaign import run_campaign
from engine.ledger import statements
from engine.ledger import writer as writer_module
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter, LedgerWriteFailed
from engine.sandbox import SandboxConfig, running_sandbox
from engine.submitter.rate import Rate
from tests.conftest import LedgerSpec
from tests.test_crash_resume import write_contacts
from tests.test_reconcile import campaign_options, job


def committed_keys(store: LedgerSpec) -> set[str]:
    """What another process would find on disk right now."""
    with closing(store.open(create=False)) as ledger:
        return set(ledger.keys())


async def test_write_durably_returns_only_once_committed(store: LedgerSpec) -> None:
    writer = BatchWriter(store.open)
    writer.start()
    writer.write(*job("quiet", "pending"))
    await writer.write_durably(*job("loud", "pending", line=2))
    # Both are on disk: the durable write carried the plain one queued before it.
    assert committed_keys(store) == {"quiet", "loud"}
    await writer.close()


async def test_many_concurrent_durable_writes_share_few_commits(store: LedgerSpec) -> None:
    store.open().close()
    writer = BatchWriter(store.open)
    writer.start()

    async def one(i: int) -> None:
        await writer.write_durably(*job(f"k{i}", "submitting", line=i))

    await asyncio.gather(*(one(i) for i in range(300)))
    assert committed_keys(store) == {f"k{i}" for i in range(300)}
    assert writer.statements == 600
    # Everything queued while one commit is on disk goes in the next: never one per job.
    assert writer.commits <= 3
    await writer.close()


async def test_a_failed_commit_stops_every_later_write(store: LedgerSpec) -> None:
    writer = BatchWriter(store.open)
    writer.start()
    await writer.write_durably(*job("a", "pending"))
    with pytest.raises(LedgerWriteFailed):
        await writer.write_durably(*job("a", "pending"))  # the key exists: the batch fails
    with pytest.raises(LedgerWriteFailed):
        writer.write(*job("b", "pending"))
    with pytest.raises(LedgerWriteFailed):
        await writer.close()
    assert committed_keys(store) == {"a"}


def count_commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Statements per transaction, for every ledger commit from now on."""
    commits: list[int] = []
    real = Ledger.transaction

    def counting(self: Ledger, work: Any) -> None:
        batch = list(work)
        commits.append(len(batch))
        real(self, batch)

    monkeypatch.setattr(Ledger, "transaction", counting)
    return commits


@pytest.mark.parametrize(
    ("rate", "most_commits"),
    [
        # Concurrency-bound: the workers wait on the ledger together, so commits are shared.
        (Rate(100_000, 1.0), 400 // 4),
        # Rate-bound: a job's outcome rides with the next job's mark; never two per job.
        (Rate(1_000, 1.0), 400 + 10),
    ],
)
async def test_a_run_commits_in_groups(
    tmp_path: Path,
    store: LedgerSpec,
    monkeypatch: pytest.MonkeyPatch,
    rate: Rate,
    most_commits: int,
) -> None:
    commits = count_commits(monkeypatch)
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 400)
    async with running_sandbox(SandboxConfig(latency_ms=5)) as sandbox:
        options = campaign_options(jobs, store, sandbox.base_url)
        options.rate = rate
        report = await run_campaign(options)
    assert report.counts["submitted"] == 400
    # Each new job takes an insert marking it 'submitting', then a 'submitted' mark.
    assert sum(commits) >= 2 * 400
    assert len(commits) <= most_commits
    assert max(commits) > 16


async def test_plain_writes_wait_for_company_but_not_for_ever(
    store: LedgerSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = BatchWriter(store.open)
    writer.start()
    for i in range(50):
        writer.write(*job(f"p{i}", "pending", line=i))
    await asyncio.sleep(0)
    assert writer.commits == 0
    await writer.write_durably(*job("d", "pending"))
    assert (writer.commits, writer.statements) == (1, 51)

    monkeypatch.setattr(writer_module, "LINGER_S", 0.01)
    writer.write(*job("alone", "pending"))
    for _ in range(100):
        if writer.commits == 2:
            break
        await asyncio.sleep(0.01)
    assert "alone" in committed_keys(store)
    await writer.close()


async def test_statements_queued_after_close_are_refused(store: LedgerSpec) -> None:
    writer = BatchWriter(store.open)
    writer.start()
    await writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(statements.clear_invalid())
