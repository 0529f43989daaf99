"""Any cell text reaches input_text exactly: through CSV or JSONL, template and schema."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.prepare import Preparer
from engine.reader import JobsFormat, open_rows
from engine.template import load_template

TEMPLATE = load_template(Path(__file__).parent / "data" / "issue4" / "template.json")

AWKWARD = ['"', '""', ",", "\n", "\r\n", "\r", "{{ name }}", "{{", "}}", "{% x %}", "😀"]
AWKWARD += ["👩‍👩‍👧", "\ufeff", "\u2028", "\t", " ", "\x00", "é"]
cells = st.lists(
    st.one_of(
        st.sampled_from(AWKWARD),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    ),
    max_size=12,
).map("".join)


def usable(text: str) -> bool:
    # input_text must hold something that is not whitespace (the schema's rule).
    return re.search(r"\w", text) is not None


def prepared_cells(data: bytes, fmt: JobsFormat) -> list[tuple[str, str]]:
    """(input_text, title) of every job the file prepares to."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"jobs.{fmt.value}"
        path.write_bytes(data)
        preparer = Preparer(TEMPLATE)
        out = []
        with open_rows(str(path), fmt) as source:
            for row in source.rows:
                job = preparer.prepare(row)
                assert job.body is not None, job.error_text
                voice = job.body["video_inputs"][0]["voice"]
                out.append((voice["input_text"], job.body["title"]))
        return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=cells, name=cells, crlf=st.booleans())
def test_csv_cell_text_round_trips_into_the_request_exactly(
    script: str, name: str, crlf: bool
) -> None:
    assume(usable(script))
    buffer = io.StringIO(newline="")
    # Python's writer leaves a lone CR unquoted under an LF terminator, which no reader
    # can undo; spreadsheet exports quote it, as QUOTE_ALL does.
    quoting = csv.QUOTE_MINIMAL if crlf else csv.QUOTE_ALL
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n", quoting=quoting)
    writer.writerow(["name", "script", "speed"])
    writer.writerow([name, script, "1.0"])
    writer.writerow(["second", "row after it", "1.0"])

    got = prepared_cells(buffer.getvalue().encode("utf-8"), JobsFormat.CSV)

    assert got == [(script, f"For {name}"), ("row after it", "For second")]


@settings(max_examples=100, deadline=None)
@given(script=cells, name=cells)
def test_jsonl_variable_text_round_trips_into_the_request_exactly(script: str, name: str) -> None:
    assume(usable(script))
    line = json.dumps({"name": name, "script": script, "speed": 1.0}, ensure_ascii=False)

    got = prepared_cells((line + "\n").encode("utf-8"), JobsFormat.JSONL)

    assert got == [(script, f"For {name}")]
