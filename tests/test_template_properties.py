"""Any printable cell text reaches input_text exactly: through CSV or JSONL, template and
schema; a control character anywhere makes the row invalid instead."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import Reason
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
# What a cell may carry: spoken text keeps tab and line breaks, a title nothing of C0/C1.
spoken = cells.map(lambda text: re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", "", text))
shown = cells.map(lambda text: re.sub(r"[\x00-\x1f\x7f-\x9f]", "", text))
controls = st.characters(min_codepoint=0, max_codepoint=0x9F).filter(
    lambda c: ord(c) < 0x20 or ord(c) >= 0x7F
)


def named(text: str) -> bool:
    # An empty or blank name cell makes the row invalid: the template has no fallback.
    # Blank: nothing but whitespace and invisible format characters (Unicode Cf).
    return not all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


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
@given(script=spoken, name=shown, crlf=st.booleans())
def test_csv_cell_text_round_trips_into_the_request_exactly(
    script: str, name: str, crlf: bool
) -> None:
    assume(usable(script) and named(name))
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
@given(script=spoken, name=shown)
def test_jsonl_variable_text_round_trips_into_the_request_exactly(script: str, name: str) -> None:
    assume(usable(script) and named(name))
    line = json.dumps({"name": name, "script": script, "speed": 1.0}, ensure_ascii=False)

    got = prepared_cells((line + "\n").encode("utf-8"), JobsFormat.JSONL)

    assert got == [(script, f"For {name}")]


@settings(max_examples=200, deadline=None)
@given(
    text=shown,
    control=controls,
    at=st.integers(min_value=0),
    spoken_field=st.booleans(),
    fmt=st.sampled_from([JobsFormat.CSV, JobsFormat.JSONL]),
)
def test_a_control_character_in_a_cell_makes_the_row_invalid_naming_it(
    text: str, control: str, at: int, spoken_field: bool, fmt: JobsFormat
) -> None:
    allowed_in_speech = control in "\t\r\n"
    cell = text[: at % (len(text) + 1)] + control + text[at % (len(text) + 1) :]
    assume(usable(cell.strip()) or not allowed_in_speech)
    cells = {"name": "Ava", "script": "Hello there", "speed": "1.0"}
    column = "script" if spoken_field else "name"
    cells[column] = cell
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"jobs.{fmt.value}"
        if fmt is JobsFormat.CSV:
            buffer = io.StringIO(newline="")
            writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
            writer.writerows([list(cells), list(cells.values())])
            path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        else:
            path.write_text(json.dumps(cells) + "\n", encoding="utf-8")
        with open_rows(str(path), fmt) as source:
            [job] = [Preparer(TEMPLATE).prepare(row) for row in source.rows]

    if spoken_field and allowed_in_speech:
        assert job.valid, job.error_text
        return
    assert not job.valid
    [error] = job.errors
    assert error.reason is Reason.CONTROL_CHARACTER
    assert f"column '{column}' holds control character U+{ord(control):04X} (" in error.message
