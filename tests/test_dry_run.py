"""``run --dry-run``: counts and the cost estimate, with nothing sent and nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli

TEMPLATE = str(Path(__file__).parent / "data" / "issue4" / "template.json")


def words(n: int) -> str:
    return " ".join(["word"] * n)


def write_jobs(path: Path, rows: list[tuple[str, str, str]]) -> str:
    lines = ["id,name,script,speed", *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


ROWS = [
    ("a", "Ava", words(150), "1.0"),  # 60 s: 1 credit
    ("b", "Liam", words(75), "1.5"),  # 20 s: half a credit
    ("c", "Noah", words(10), "7"),  # invalid speed
    ("a", "Ava", words(150), "1.0"),  # repeated key
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def dry_run(jobs: str, ledger: Path, *extra: str) -> dict[str, Any]:
    result = invoke(
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger),
        "--dry-run", "--json", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_a_first_dry_run_counts_new_invalid_and_repeats_and_prices_the_new(
    tmp_path: Path,
) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS)
    ledger = tmp_path / "jobs.ledger.db"

    summary = dry_run(jobs, ledger)

    assert {k: summary[k] for k in ("read", "new", "already_done", "invalid", "duplicates")} == {
        "read": 4,
        "new": 2,
        "already_done": 0,
        "invalid": 1,
        "duplicates": 1,
    }
    assert summary["estimate"] == {
        "videos": 2,
        "test_videos": 0,
        "video_minutes": 1.33,
        "credits": 1.5,
        "audio_scenes_of_unknown_length": 0,
    }
    assert summary["dry_run"] is True
    assert list(tmp_path.iterdir()) == [tmp_path / "jobs.csv"]


def test_test_videos_are_priced_at_no_credits(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS)

    summary = dry_run(jobs, tmp_path / "l.db", "--test-videos")

    assert summary["estimate"]["credits"] == 0
    assert summary["estimate"]["test_videos"] == 2
    assert summary["estimate"]["video_minutes"] == 1.33


def test_the_text_report_states_counts_cost_and_that_nothing_happened(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS)

    result = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Dry run: 4 rows read (comma-separated): 2 new, 0 already done, 1 invalid (1 schema), "
        "1 repeated job keys.",
        "Would send 2 requests: about 1.3 video minutes, about 1.5 API credits.",
        "Nothing was sent and nothing was written.",
    ]


@pytest.mark.usefixtures("no_backoff")
def test_after_a_run_sent_rows_are_done_and_an_edited_one_is_changed_not_new(
    tmp_path: Path,
) -> None:
    csv_path = tmp_path / "jobs.csv"
    ledger = tmp_path / "jobs.ledger.db"
    jobs = write_jobs(csv_path, ROWS[:2])
    sent = invoke(
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger),
        "--sandbox", "--rate", "200/s", "--no-progress", "--json",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    before = ledger.read_bytes()

    write_jobs(
        csv_path,
        [ROWS[0], ("b", "Liam", words(20), "1.5"), ("e", "Emma", words(30), "1.0")],
    )
    summary = dry_run(jobs, ledger)

    assert (summary["new"], summary["already_done"], summary["changed"]) == (1, 2, 1)
    assert summary["estimate"]["videos"] == 1
    assert summary["estimate"]["credits"] == 0.5
    assert ledger.read_bytes() == before
