"""One reading of the service's video list, checked for the faults that would make it lie.

Absence is proven by what a listing did *not* show, so a listing counts only if
it holds together as read:

- **Order.** Newest first, within each page and from one page to the next
  (equal ``created_at`` seconds are fine). An item newer than the one before it
  means the order the search stops on cannot be trusted.
- **No repeats.** A video shown twice means the paging shifted under the reader
  (a video created or deleted between two pages), and a shift that repeats one
  item can as well skip another.
- **Past the window.** The list is read until a whole page lies before the
  window (so the order is seen to hold across the page where the search would
  stop), or to its end.

The window is set on the service's clock: the earliest attempt (a local time)
plus the lead of the service's clock measured from its ``Date`` header, less
``WINDOW_MARGIN_S``. Each attempt is placed both with the lead measured when it
was made (kept in the ledger) and with the lead measured now, and the earlier
wins: our clock stepped in between (a VM resumed, NTP) moves only the second. While
neither lead is known the service's clock is unknown, and the whole list is read:
reading to the end proves absence whatever the clocks say.

What one listing cannot show is an item it skipped while keeping its order (a
page boundary lost on a shift). ``disagreement`` compares two listings read with
different page sizes, so their boundaries fall elsewhere: an item skipped at a
boundary of one is in the other. Two listings that skip the same item in the
same way, or a list that leaves a video out in the middle of a page, or is out
of order only beyond what was read, cannot be told from a true one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from engine.api.port import VideoApi
from engine.errors import AbortRun, EngineError
from engine.request.responses import VideoListItem
from engine.submitter.constants import MAX_LISTED, WINDOW_MARGIN_S
from engine.submitter.rate import Limiter


@dataclass(slots=True)
class Listing:
    """What one reading of the list saw of the window, and whether it proves anything."""

    page_size: int
    #: The window's start on the service's clock; None: the whole list.
    since: float | None = None
    #: Videos in the window, video_id → created_at, newest first.
    videos: dict[str, int | None] = field(default_factory=dict)
    #: Read to the window's end without a fault (not merely stopped because all was found).
    complete: bool = False
    #: Why this listing proves nothing, when it does not.
    problem: str | None = None
    #: created_at of the newest video read, in the window or not.
    head: int | None = None
    _seen: set[str] = field(default_factory=set)
    _last: int | None = None

    def take(self, items: list[VideoListItem]) -> list[VideoListItem]:
        """Check one page against what came before; its items in the window."""
        fresh: list[VideoListItem] = []
        for item in items:
            if item.video_id in self._seen:
                self.problem = f"the service's list showed video {item.video_id} twice"
                return fresh
            self._seen.add(item.video_id)
            created = item.created_at
            if created is not None:
                if self._last is not None and created > self._last:
                    self.problem = (
                        f"the service's list is not newest first (video {item.video_id} "
                        f"came after an older one)"
                    )
                    return fresh
                self._last = created
                if self.head is None:
                    self.head = created
            if created is None or self.since is None or created >= self.since:
                fresh.append(item)
                self.videos[item.video_id] = created
        return fresh

    def before_window(self, items: list[VideoListItem]) -> bool:
        since = self.since
        return (
            since is not None
            and bool(items)
            and all(i.created_at is not None and i.created_at < since for i in items)
        )


def window_start(
    attempts: Iterable[tuple[float, float | None]], service_lead: float | None
) -> float | None:
    """The earliest attempt on the service's clock, less the margin; None while unknown.

    ``attempts``: (local time, the service's lead measured then, if it was). Of the two
    placings of an attempt the earlier is taken: a window too wide costs pages read, one
    too narrow a video paid twice.
    """
    earliest: float | None = None
    for attempted_at, lead_then in attempts:
        leads = [lead for lead in (lead_then, service_lead) if lead is not None]
        if not leads:
            return None
        at = attempted_at + min(leads)
        earliest = at if earliest is None else min(earliest, at)
    return None if earliest is None else earliest - WINDOW_MARGIN_S


async def read_listing(
    client: VideoApi,
    limiter: Limiter,
    page_size: int,
    since: Callable[[], float | None],
    on_window: Callable[[list[VideoListItem]], Awaitable[bool]],
) -> Listing:
    """Page the list newest first through the window, handing each page's videos in the
    window to ``on_window``, which answers True once nothing more is sought.

    ``since`` is asked after the first answer, whose ``Date`` gives the service's clock.
    """
    listing = Listing(page_size)
    token: str | None = None
    pages = 0
    while True:
        try:
            async with limiter:
                items, token = await client.video_list(token, page_size)
        except AbortRun:
            raise
        except EngineError as err:
            listing.problem = f"listing the service's videos failed: {err}"
            return listing
        if pages == 0:
            listing.since = since()
        pages += 1
        fresh = listing.take(items)
        if listing.problem is not None or await on_window(fresh):
            return listing
        if token is None or listing.before_window(items):
            listing.complete = True
            return listing
        if pages * page_size >= MAX_LISTED:
            listing.problem = f"listed {MAX_LISTED} videos without reaching the attempt"
            return listing


def disagreement(first: Listing, second: Listing) -> str | None:
    """Why two complete listings of one window cannot both be true, or None.

    Every video of the first must be in the second; the second may hold more only
    where they are newer than anything in the first (created between the two).
    """
    for video_id in first.videos:
        if video_id not in second.videos:
            return (
                f"video {video_id} was in one listing and not in the next "
                f"(skipped at a page boundary, or deleted meanwhile)"
            )
    for video_id, created in second.videos.items():
        if video_id in first.videos or first.head is None:
            continue
        if created is None or created < first.head:
            return f"video {video_id} was missing from one listing (skipped at a page boundary)"
    return None
