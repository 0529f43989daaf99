"""One kind of video per keyed ledger: test videos (``"test": true``) and real ones never
share a ledger, or a test run's rows would be taken for the real campaign's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.ledger.store import Ledger, Named, Videos, mixed_videos


def videos_of(body: Mapping[str, Any]) -> Videos:
    """The kind of video a request body makes: ``"test": true`` (from --test-videos or
    the template's own) is a test video."""
    return "test" if body.get("test") is True else "real"


class KindGuard:
    """One kind of video on a keyed ledger, judged by the bodies sent: the first body a
    run sends against the ledger's earlier runs, each later one against the first."""

    def __init__(self, ledger: Ledger | None, where: Named) -> None:
        """``where``: the ledger as the refusal names it (its spec when not made yet)."""
        self._ledger = ledger
        self._where = where
        #: The kind of this run's bodies, once one was checked.
        self.kind: Videos | None = None

    def check(self, body: Mapping[str, Any]) -> None:
        kind = videos_of(body)
        if self.kind is None:
            if self._ledger is not None:
                self._ledger.require_videos(kind)
            self.kind = kind
        elif kind != self.kind:
            raise mixed_videos(self._where, self.kind, kind)
