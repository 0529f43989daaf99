"""What text from a row may carry into a request: no control characters.

A NUL or an escape sequence in a spreadsheet cell is invisible there and then spoken,
shown as a title, or exported raw; it makes the row invalid before anything is paid
for. Tab and line breaks are kept where text is spoken.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from engine.errors import FieldError, Reason

# C0, DEL and C1: every character Unicode classes as a control (Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same less tab, LF and CR: a script may be laid out in lines.
_CONTROL_IN_SPEECH = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The fields whose text is spoken: V2 ``input_text`` and v3 ``script``.
_SPOKEN = frozenset({"input_text", "script"})

# fmt: off
_C0_NAMES = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF",
    "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM",
    "SUB", "ESC", "FS", "GS", "RS", "US",
)
_C1_NAMES = (
    "PAD", "HOP", "BPH", "NBH", "IND", "NEL", "SSA", "ESA", "HTS", "HTJ", "VTS", "PLD",
    "PLU", "RI", "SS2", "SS3", "DCS", "PU1", "PU2", "STS", "CCH", "MW", "SPA", "EPA",
    "SOS", "SGCI", "SCI", "CSI", "ST", "OSC", "PM", "APC",
)
# fmt: on


def control_name(char: str) -> str:
    """``U+0000 (NUL)``: the code point and its usual abbreviation."""
    code = ord(char)
    if code < 0x20:
        name = _C0_NAMES[code]
    elif code == 0x7F:
        name = "DEL"
    else:
        name = _C1_NAMES[code - 0x80]
    return f"U+{code:04X} ({name})"


def control_pattern(path: str) -> re.Pattern[str]:
    """The characters refused in the field at ``path``: spoken text may hold line breaks."""
    field = path.rsplit(".", 1)[-1]
    return _CONTROL_IN_SPEECH if field in _SPOKEN else _CONTROL


def control_in(text: str, pattern: re.Pattern[str]) -> str | None:
    """The first refused control character in ``text``, or None.

    ``isprintable`` is one fast C pass that is true for almost every clean cell; only
    text it doubts (controls, but also no-break spaces or emoji joiners) meets the regex.
    """
    if text.isprintable():
        return None
    found = pattern.search(text)
    return found.group() if found else None


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: empty, whitespace, or format characters only.

    A zero-width space, word joiner, BOM or soft hyphen (Unicode's Cf) is invisible in
    a spreadsheet: a cell of only those is as empty as one of spaces. Printable text (nearly
    every cell) is decided by two fast C passes; only the rest is walked.
    """
    if not text or text.isspace():
        return True
    if text.isprintable():
        return False
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def control_in_value(value: Any, pattern: re.Pattern[str]) -> str | None:
    """The first refused control character in any text inside ``value`` (JSONL objects)."""
    if isinstance(value, str):
        return control_in(value, pattern)
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        for item in value:
            if (char := control_in_value(item, pattern)) is not None:
                return char
    return None


def marked_controls(text: str) -> str:
    """``text`` with each control but tab and line breaks shown as U+FFFD, for output
    such as an export, which keeps an invalid row's cells so the contact can be found."""
    return text if text.isprintable() else _CONTROL_IN_SPEECH.sub("\ufffd", text)


def control_error(path: str, column: str, char: str) -> FieldError:
    return FieldError(
        path,
        f"column '{column}' holds control character {control_name(char)}; remove it from the cell",
        Reason.CONTROL_CHARACTER,
    )


def _doubtful(value: Any) -> bool:
    """Whether any text in ``value`` fails ``isprintable``: a walk with no paths built,
    so a clean body (nearly every one) costs a fraction of its validation."""
    kind = type(value)
    if kind is str:
        return not value.isprintable()
    if kind is dict:
        # A plain loop: any() over a generator costs twice as much per body.
        for key, item in value.items():  # noqa: SIM110
            if not key.isprintable() or _doubtful(item):
                return True
        return False
    if kind is list:
        for item in value:
            if _doubtful(item):
                return True
    # Numbers, booleans, null: no text. JSON gives no other kinds.
    return False


def body_control_errors(body: Any) -> list[FieldError]:
    """Every string of a whole request body (JSONL without a template) holding a control."""
    return _body_errors(body, "") if _doubtful(body) else []


def _body_errors(body: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(body, str):
        if (char := control_in(body, control_pattern(path))) is not None:
            errors.append(
                FieldError(
                    path,
                    f"holds control character {control_name(char)}; remove it",
                    Reason.CONTROL_CHARACTER,
                )
            )
    elif isinstance(body, Mapping):
        for key, value in body.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (char := control_in(key, _CONTROL)) is not None:
                errors.append(
                    FieldError(
                        child,
                        f"the field name holds control character {control_name(char)}",
                        Reason.CONTROL_CHARACTER,
                    )
                )
            errors.extend(_body_errors(value, child))
    elif isinstance(body, list):
        for i, value in enumerate(body):
            errors.extend(_body_errors(value, f"{path}[{i}]"))
    return errors
