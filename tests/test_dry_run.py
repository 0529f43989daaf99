"""``run --dry-run``: counts and the cost estimate, with nothing sent and nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli
from engine.prepare.estimate import PRICES

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


INVALID_SPEED = "video_inputs[0].voice.speed: must be between 0.5 and 1.5, got '7'"


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
        "send_seconds": 2.0,
        "render_seconds": None,
        "rate": "1/s",
        "basis": PRICES.basis(),
    }
    assert [(r["line"], r["reason"]) for r in summary["first_invalid"]] == [(4, "schema")]
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
        "Dry run: 4 rows read (comma-separated): 2 new, 0 already done, "
        "1 invalid (1 schema error), 1 repeated job key.",
        f"  line 4: schema: {INVALID_SPEED}",
        "Would send 2 requests: about 1.3 video minutes, about 1.5 API credits.",
        f"Estimate basis: {PRICES.basis()}.",
        "Sending takes about 2 s at --rate 1/s (rendering comes after, at the service's pace).",
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
    text = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger",
                  str(ledger), "--dry-run")  # fmt: skip
    assert "1 job changed since sent" in text.stdout
    assert "give the campaign a new --ledger" in text.stdout
    assert ledger.read_bytes() == before


def test_the_first_five_invalid_rows_are_listed_with_line_and_reason(tmp_path: Path) -> None:
    bad = [(f"k{n}", f"N{n}", words(3), "7") for n in range(7)]
    jobs = write_jobs(tmp_path / "jobs.csv", [ROWS[0], *bad])

    result = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")
    summary = dry_run(jobs, tmp_path / "l.db")

    assert result.exit_code == 0, result.output
    listed = [line for line in result.stdout.splitlines() if line.startswith("  line ")]
    assert listed == [f"  line {n}: schema: {INVALID_SPEED}" for n in range(3, 8)]
    assert "  ... and 2 more (`heygen-batch validate` lists every one)." in result.stdout
    assert [r["line"] for r in summary["first_invalid"]] == [3, 4, 5, 6, 7]
    assert summary["first_invalid"][0]["error"] == INVALID_SPEED


def test_the_time_to_send_follows_the_chosen_rate(tmp_path: Path) -> None:
    rows = [(f"k{n}", f"N{n}", words(3), "1.0") for n in range(120)]
    jobs = write_jobs(tmp_path / "jobs.csv", rows)

    slow = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")
    fast = dry_run(jobs, tmp_path / "l.db", "--rate", "2/s")
    hourly = dry_run(jobs, tmp_path / "l.db", "--rate", "60/h")

    assert "Sending takes about 2 min at --rate 1/s" in slow.stdout
    assert (fast["estimate"]["send_seconds"], fast["estimate"]["rate"]) == (60.0, "2/s")
    assert hourly["estimate"]["send_seconds"] == 7200.0


def test_render_slots_bound_the_time_by_the_video_minutes_they_render(tmp_path: Path) -> None:
    rows = [(f"k{n}", f"N{n}", words(3), "1.0") for n in range(120)]
    jobs = write_jobs(tmp_path / "jobs.csv", rows)

    unbounded = dry_run(jobs, tmp_path / "l.db", "--rate", "100/s")
    ten = dry_run(jobs, tmp_path / "l.db", "--rate", "100/s", "--max-rendering", "10")
    twenty = dry_run(jobs, tmp_path / "l.db", "--rate", "100/s", "--max-rendering", "20")

    assert unbounded["estimate"]["render_seconds"] is None
    minutes = ten["estimate"]["video_minutes"]
    assert ten["estimate"]["render_seconds"] == round(minutes * 60 * 2.0 / 10, 1)
    assert twenty["estimate"]["render_seconds"] * 2 == pytest.approx(
        ten["estimate"]["render_seconds"], abs=0.2
    )


def test_the_basis_of_the_estimate_is_stated(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS[:1])

    result = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")

    assert result.exit_code == 0, result.output
    basis = next(line for line in result.stdout.splitlines() if line.startswith("Estimate basis"))
    assert "150 spoken words a minute" in basis
    assert "30-second steps" in basis
    assert f"price table of {PRICES.as_of}" in basis


def test_a_dry_run_that_would_send_nothing_exits_1(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", [ROWS[2]])

    result = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")
    as_json = invoke(
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run", "--json"
    )

    assert result.exit_code == 1
    reason = (
        "1 row read, and none would be sent "
        "(1 invalid, 0 already done, 0 failed or uncertain, 0 repeated)."
    )
    assert reason in result.stderr
    assert as_json.exit_code == 1
    summary = json.loads(as_json.stdout)
    assert (summary["exit_code"], summary["estimate"]["videos"]) == (1, 0)
    assert summary["reason"] == reason


def test_a_dry_run_of_an_empty_file_exits_0(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", [])

    result = invoke("run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run")

    assert result.exit_code == 0, result.output


def test_jobs_held_back_by_limit_still_count_as_to_be_sent(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS[:2])

    summary = dry_run(jobs, tmp_path / "l.db", "--limit", "0")

    assert (summary["held_by_limit"], summary["exit_code"]) == (2, 0)
