"""Issue 18, item 9: a row already recorded invalid and unchanged since does not make a
nightly run exit 1 again; ``--strict`` restores that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_dry_run import ROWS, TEMPLATE, invoke, words, write_jobs

pytestmark = pytest.mark.usefixtures("no_backoff")

BAD = ("c", "Noah", words(10), "7")  # invalid speed


def nightly(jobs: str, ledger: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = invoke(
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger),
        "--sandbox", "--no-progress", "--json", *extra,
    )  # fmt: skip
    return result.exit_code, json.loads(result.stdout)


def test_an_unchanged_invalid_row_is_counted_but_does_not_exit_1_again(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", [ROWS[0], BAD])
    ledger = tmp_path / "jobs.ledger.db"

    first = nightly(jobs, ledger)
    second = nightly(jobs, ledger)
    strict = nightly(jobs, ledger, "--strict")
    third = nightly(jobs, ledger)

    assert first[0] == 1
    assert (first[1]["invalid"], first[1]["invalid_unchanged"]) == (1, 0)
    assert second[0] == 0
    assert (second[1]["invalid"], second[1]["invalid_unchanged"]) == (1, 1)
    assert second[1]["counts"]["invalid"] == 1  # still recorded, and counted
    assert second[1]["reason"] is None
    assert strict[0] == 1
    assert "1 jobs invalid" in strict[1]["reason"]
    assert third[0] == 0  # --strict changed nothing in the ledger


def test_an_invalid_row_edited_since_or_a_new_one_still_exits_1(tmp_path: Path) -> None:
    csv_path = tmp_path / "jobs.csv"
    ledger = tmp_path / "jobs.ledger.db"
    jobs = write_jobs(csv_path, [ROWS[0], BAD])
    assert nightly(jobs, ledger)[0] == 1

    write_jobs(csv_path, [ROWS[0], ("c", "Noah", words(10), "9")])
    edited = nightly(jobs, ledger)
    write_jobs(csv_path, [ROWS[0], ("c", "Noah", words(10), "9"), ("d", "Ed", words(3), "0")])
    added = nightly(jobs, ledger)

    assert edited[0] == 1
    assert edited[1]["invalid_unchanged"] == 0
    assert added[0] == 1
    assert (added[1]["invalid"], added[1]["invalid_unchanged"]) == (2, 1)


def test_an_unchanged_ragged_row_is_known_too(tmp_path: Path) -> None:
    """A row with too many cells has no row fingerprint: its values and error stand in."""
    csv_path = tmp_path / "jobs.csv"
    ledger = tmp_path / "jobs.ledger.db"
    jobs = write_jobs(csv_path, [ROWS[0]])
    with csv_path.open("a", encoding="utf-8") as f:
        f.write("z,Zed,hello there,1.0,extra\n")

    first = nightly(jobs, ledger)
    second = nightly(jobs, ledger)

    assert (first[0], first[1]["invalid"]) == (1, 1)
    assert (second[0], second[1]["invalid_unchanged"]) == (0, 1)


def test_the_summary_says_why_the_old_invalid_row_does_not_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", [ROWS[0], BAD])
    ledger = tmp_path / "jobs.ledger.db"
    args = [
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger),
        "--sandbox", "--no-progress",
    ]  # fmt: skip
    invoke(*args)
    assert any("line 3: invalid:" in r.getMessage() for r in caplog.records)
    caplog.clear()

    again = invoke(*args)

    assert again.exit_code == 0, again.output
    assert "1 of the invalid rows were invalid in an earlier run" in again.stdout
    assert not any("invalid:" in r.getMessage() for r in caplog.records)  # old news
