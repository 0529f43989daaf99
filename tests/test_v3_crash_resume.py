"""kill -9 during a v3 run with faults (429, 5xx, drops before and after creation),
twice, then resume: every job submitted once, none uncertain, one video per
Idempotency-Key at the sandbox."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest

from engine.prepare.keys import idempotency_key
from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import (
    ROWS,
    campaign_id,
    cli_env,
    ledger_rows,
    run_and_kill,
    run_args,
    write_contacts,
)

V3_TEMPLATE = Path(__file__).resolve().parent.parent / "jobs" / "demo-template-v3.json"
FAULTS = (
    "--rate-429", "0.05", "--retry-after", "0", "--rate-5xx", "0.05",
    "--drop-before", "0.03", "--drop-after", "0.03",
)  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_twice_during_a_v3_run_with_faults_then_resume(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, ROWS)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox(
        "--latency-ms", "20", "--latency-spread-ms", "10", "--seed", str(seed), *FAULTS
    ) as url:
        args = [*run_args(jobs, url, "--key-column", "contact_id"), "--template", str(V3_TEMPLATE)]
        first = run_and_kill(args, rng.uniform(0.4, 0.8))
        assert first == -signal.SIGKILL, "the first kill should land mid-run"
        run_and_kill(args, rng.uniform(0.4, 0.9))
        final = subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        assert final.returncode == 0, final.stderr
        seen = counters(url)

    rows = ledger_rows(ledger)
    assert len(rows) == ROWS
    assert {status for _, status, _ in rows} == {"submitted"}
    assert len({video_id for _, _, video_id in rows}) == ROWS
    campaign = campaign_id(ledger)
    made = seen["created_by_idempotency_key"]
    assert made == {idempotency_key(campaign, key): 1 for key, _, _ in rows}
    assert seen["created"] == ROWS
