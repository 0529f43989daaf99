"""Webhook signatures: hex HMAC-SHA256 of the raw body, keyed with the endpoint secret.

HeyGen does not document the header; receivers in the wild read ``signature`` or
``x-heygen-signature`` (see shared/HEYGEN-V3.md, Webhooks). The sandbox sends ``signature``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADERS = ("signature", "x-heygen-signature")
#: Some senders prefix the digest with its algorithm.
_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verified(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether a signature header holds the body's signature; compared in constant time."""
    expected = sign(secret, body).encode()
    for name in SIGNATURE_HEADERS:
        given = headers.get(name)
        if given is None:
            continue
        given = given.strip().lower().removeprefix(_PREFIX)
        if hmac.compare_digest(expected, given.encode("utf-8", "replace")):
            return True
    return False
