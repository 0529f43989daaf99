"""File names for job keys: valid on any common file system, distinct, and stable.

A job key is whatever a CSV cell held: slashes, ``..``, control characters, names
Windows reserves, 300 characters. Each key gets a stem that NTFS, APFS, ext4 and
FAT accept; keys whose stems would be one file (on a case-insensitive system too)
all get a suffix from a hash of the key, so none of them wins by the order rows came in.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

#: A longer stem is cut to this many UTF-8 bytes and given a hash suffix.
MAX_STEM_BYTES = 200
#: No stem, suffix included, is longer: a 255-byte name keeps room for ``.mp4.part``.
MAX_SUFFIXED_BYTES = 240
HASH_CHARS = 10
# Forbidden in a Windows file name, or a path separator somewhere.
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{name}{n}" for name in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)


def key_hash(key: str, chars: int = HASH_CHARS) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:chars]


def _printable(char: str) -> str:
    # Categories C*: controls, format characters, surrogates, unassigned, private use.
    return "_" if unicodedata.category(char).startswith("C") else char


def _truncated(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def safe_stem(key: str) -> str:
    """The key as a file name without extension; not yet made distinct from others."""
    text = unicodedata.normalize("NFC", key)
    text = _FORBIDDEN.sub("_", "".join(_printable(c) for c in text))
    # A leading dot hides the file (and "." or ".." name no file at all); trailing
    # dots and spaces are dropped by Windows, which would merge "a." with "a".
    if text.startswith("."):
        text = "_" + text[1:]
    text = text.rstrip(". ") or "_"
    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        text = "_" + text
    if len(text.encode("utf-8")) > MAX_STEM_BYTES:
        text = _suffixed(_truncated(text, MAX_STEM_BYTES), key, HASH_CHARS)
    return text


def _suffixed(stem: str, key: str, chars: int) -> str:
    return f"{_truncated(stem, MAX_SUFFIXED_BYTES - chars - 1)}-{key_hash(key, chars)}"


def assign_stems(keys: Iterable[str]) -> dict[str, str]:
    """One distinct stem per key; the same set of keys always gets the same stems.

    Stems are compared case-folded, so two never name one file on a case-insensitive
    file system either.
    """
    stems = {key: safe_stem(key) for key in keys}
    by_name: defaultdict[str, list[str]] = defaultdict(list)
    for key, stem in stems.items():
        by_name[stem.casefold()].append(key)
    for group in by_name.values():
        if len(group) > 1:
            for key in group:
                stems[key] = _suffixed(stems[key], key, HASH_CHARS)
    # A suffixed stem may still equal another key's own stem ("a_b-<hash of a/b>"):
    # the full hash settles what the short one did not.
    seen: defaultdict[str, list[str]] = defaultdict(list)
    for key, stem in stems.items():
        seen[stem.casefold()].append(key)
    for group in seen.values():
        if len(group) > 1:
            for key in group:
                stems[key] = _suffixed(safe_stem(key), key, 64)
    return stems
