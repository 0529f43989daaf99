"""Counts in messages: ``1 row``, ``2 rows``."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with ``noun`` in the number it asks for: ``counted(1, "row")`` is
    ``1 row``, ``counted(3, "row")`` is ``3 rows``; ``plural`` for a noun that does not
    take an ``s`` (``counted(2, "talking photo")`` needs none; ``"bytes"`` does)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
