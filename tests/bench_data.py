"""Generated inputs for the benchmarks: contact CSVs, the bodies they render to, full ledgers."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

from engine.prepare import Preparer
from engine.reader import JobsFormat, open_rows
from engine.template import load_template

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "jobs" / "demo-template.json"
KEY_COLUMN = "contact_id"
COLUMNS = ("contact_id", "first_name", "last_name", "email", "company", "city", "product", "speed")

_FIRST = ("Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Zoë", "José", "Hana")
_CITY = ("Seattle", "Dublin", "Lyon", "São Paulo", "Osaka", "Toronto", "Berlin")
_PRODUCT = ("the Analytics Suite", "the Sales Cloud", "Pipeline Pro")
_SPEED = ("1.0", "1.05", "0.95", "1.1")


def contact(i: int) -> list[str]:
    """Row ``i``: every row distinct, the demo's columns, all valid for the demo template."""
    first = _FIRST[i % len(_FIRST)]
    return [
        f"c-{i:07d}",
        first,
        f"Lastname{i}",
        f"{first.lower()}.{i}@example.com",
        f"Company {i % 997}",
        _CITY[i % len(_CITY)],
        _PRODUCT[i % len(_PRODUCT)],
        _SPEED[i % len(_SPEED)],
    ]


def write_contacts(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(contact(i) for i in range(rows))
    return path


def write_bodies(csv_path: Path, out: Path) -> int:
    """Render ``csv_path`` exactly as ``run --key-column contact_id`` would, one body a line."""
    # Any campaign id: it only puts a callback_id of the run's length in each body.
    preparer = Preparer(load_template(TEMPLATE), KEY_COLUMN, campaign="0123456789ab")
    count = 0
    with open_rows(str(csv_path), JobsFormat.CSV) as source, out.open("w") as f:
        for row in source.rows:
            job = preparer.prepare(row)
            if job.body is None:
                raise RuntimeError(f"bench row {row.line} is invalid: {job.error_text}")
            f.write(json.dumps(job.body, ensure_ascii=False) + "\n")
            count += 1
    return count


def mark_all_submitted(ledger_path: Path) -> int:
    """Turn a ledger the engine filled with ``pending`` jobs into one where all were sent.

    Only what a successful send changes is written (status, video_id, attempts,
    callback_id), so fingerprints, hashes and source values stay exactly as the
    engine wrote them and a resume sees what it would after a real campaign.
    """
    conn = sqlite3.connect(ledger_path)
    try:
        changed = conn.execute(
            "UPDATE jobs SET status = 'submitted', video_id = lower(hex(randomblob(16))), "
            "attempts = 1, callback_id = key WHERE status = 'pending'"
        ).rowcount
        conn.commit()
    finally:
        conn.close()
    return changed
