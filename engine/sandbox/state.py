"""The sandbox's videos and counters, with rendering simulated from the clock.

Rendering is computed lazily from ``created_at`` and the injectable clock, so tests
move time by changing the clock instead of sleeping, and no background task runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.request import request_to_body, validate_request
from engine.request.model import VideoRequest
from engine.request.v3 import V3VideoRequest, v3_request_to_body, validate_v3_request
from engine.sandbox.config import SandboxConfig
from engine.sandbox.durations import estimate_duration, estimate_v3_duration
from engine.sandbox.faults import FaultDecider, RenderSlots, SlidingWindowLimiter
from engine.sandbox.idempotency import IdempotencyKeys, RememberedKey

log = logging.getLogger(__name__)

#: Share of the render time a video stays ``pending`` before it is ``processing``.
PENDING_SHARE = 0.1


@dataclass
class Video:
    video_id: str
    title: str | None
    callback_id: str | None
    created_at: float
    request: VideoRequest | V3VideoRequest
    test: bool
    duration: float
    fails: bool

    @property
    def api(self) -> str:
        """``v2`` or ``v3``: which create endpoint made it."""
        return "v2" if isinstance(self.request, VideoRequest) else "v3"

    @property
    def captioned(self) -> bool:
        """V2 ``caption: true``; v3 a burnt-in ``caption.style`` (its SRT is always made)."""
        request = self.request
        if isinstance(request, VideoRequest):
            return request.caption
        caption = getattr(request, "caption", None)
        return caption is not None and caption.style is not None


@dataclass
class Counters:
    requests: int = 0
    violations: int = 0
    status_requests: int = 0
    list_requests: int = 0
    created_by_callback_id: dict[str, int] = field(default_factory=dict)
    #: ``time.monotonic()`` of every create request's arrival (both APIs), faulted or not.
    request_times: list[float] = field(default_factory=list)
    #: The same, and the server-side limit's refusals, by account (``account_label``):
    #: HeyGen's limits are an account's, so two keys are limited apart.
    request_times_by_account: dict[str, list[float]] = field(default_factory=dict)
    violations_by_account: dict[str, int] = field(default_factory=dict)
    #: ``POST /v3/videos`` requests (also counted in ``requests``), and of those the ones
    #: answered from a remembered ``Idempotency-Key`` or refused as still in flight.
    v3_requests: int = 0
    v3_replays: int = 0
    v3_in_progress: int = 0
    created_by_idempotency_key: dict[str, int] = field(default_factory=dict)
    v3_status_requests: int = 0
    v3_statuses_requests: int = 0
    v3_list_requests: int = 0
    #: Creates refused because every render slot was busy, or by the sustained 429.
    slot_refusals: int = 0
    sustained_refusals: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why a create is refused with 429 now, and the ``Retry-After`` to send (or None)."""

    message: str
    retry_after_s: float | None


def account_label(api_key: str) -> str:
    """Which account a request is from, as the counters name it: a short digest of its
    ``X-Api-Key``, never the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


class InvalidToken(ValueError):
    """A ``video.list`` paging token this sandbox did not hand out."""


class SandboxState:
    """Everything one sandbox remembers; ``reset`` starts it over with the same seed."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        #: Called with each new video (the webhook sender watches its render).
        self.on_create: list[Callable[[Video], None]] = []
        self.reset()

    def reset(self) -> None:
        c = self.config
        self.videos: dict[str, Video] = {}
        self._order: list[Video] = []
        self.counters = Counters()
        self.credits_used = 0
        self.keys = IdempotencyKeys(self.clock)
        self.started_at = self.clock()
        self.slots = RenderSlots(c.render_slots)
        self.faults = FaultDecider(c)
        self._limiters: dict[str, SlidingWindowLimiter] = {}
        # Render failures get their own stream so turning a fault on does not change
        # which videos fail.
        self._rng = random.Random(c.seed + 1)

    # --- creation ---------------------------------------------------------------------

    def arrival(self, api_key: str, arrived: float) -> None:
        """Count a create request (either API) as it arrives, before anything is decided."""
        counters = self.counters
        counters.requests += 1
        counters.request_times.append(arrived)
        counters.request_times_by_account.setdefault(account_label(api_key), []).append(arrived)

    def over_limit(self, api_key: str, arrived: float) -> float | None:
        """Seconds until the account's server-side limit (``--rate-limit``) has room, or
        None when this start is within it (and taken). A refusal counts as a violation."""
        c = self.config
        if c.rate_limit is None:
            return None
        account = account_label(api_key)
        limiter = self._limiters.get(account)
        if limiter is None:
            limiter = SlidingWindowLimiter(int(c.rate_limit), c.rate_limit_period_s)
            self._limiters[account] = limiter
        wait = limiter.try_acquire(arrived)
        if wait is not None:
            self.counters.violations += 1
            by_account = self.counters.violations_by_account
            by_account[account] = by_account.get(account, 0) + 1
        return wait

    def key_accepted(self, given: str) -> bool:
        """Whether ``given`` is the configured API key (any key when none is set)."""
        expected = self.config.api_key
        return expected is None or hmac.compare_digest(given.encode(), expected.encode())

    def out_of_credit(self, request: VideoRequest | V3VideoRequest) -> bool:
        limit = self.config.credit_limit
        test = isinstance(request, VideoRequest) and bool(request.test)
        return limit is not None and not test and self.credits_used >= limit

    def refuse_create(self) -> Refusal | None:
        """Whether a create arriving now must be refused with 429 (the sustained storm,
        or every render slot busy). Every create handler asks this just before it
        creates, with no wait in between, so the cap holds under concurrency."""
        c = self.config
        now = self.clock()
        if now - self.started_at < c.sustained_429_s:
            self.counters.sustained_refusals += 1
            return Refusal("Too many requests (sustained)", c.retry_after_s)
        wait = self.slots.wait(now)
        if wait is None:
            return None
        self.counters.slot_refusals += 1
        return Refusal(f"Rate limit exceeded: {c.render_slots} videos are already rendering", wait)

    def create_video(self, request: VideoRequest | V3VideoRequest) -> Video:
        """Store a validated request (either API) as a new video."""
        ratio = self.config.render_failure_ratio
        video = _video(
            # Never seeded: a later sandbox on the same ledger (``run --sandbox`` again)
            # adopts this one's videos, and the service never hands out an id twice.
            secrets.token_hex(16),
            request,
            created_at=self.clock(),
            fails=bool(ratio) and self._rng.random() < ratio,
        )
        self._add(video)
        self.slots.start(video.created_at, video.created_at + self.config.render_seconds)
        if not video.test:
            self.credits_used += 1
        if video.callback_id is not None:
            by_cb = self.counters.created_by_callback_id
            by_cb[video.callback_id] = by_cb.get(video.callback_id, 0) + 1
        for listener in self.on_create:
            listener(video)
        return video

    def _add(self, video: Video) -> None:
        self.videos[video.video_id] = video
        self._order.append(video)

    # --- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the videos (not the counters) so a later sandbox can answer for them."""
        videos = [
            {
                "video_id": v.video_id,
                "created_at": v.created_at,
                "fails": v.fails,
                "api": v.api,
                "body": (
                    request_to_body(v.request)
                    if isinstance(v.request, VideoRequest)
                    else v3_request_to_body(v.request)
                ),
            }
            for v in self._order
        ]
        # Saved too: a later sandbox must replay a key as the service would within 24 h.
        keys = [vars(k) for k in self.keys.remembered()]
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"videos": videos, "keys": keys}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            log.warning("sandbox: could not save its videos to %s (%s)", path, err)

    def load(self, path: Path) -> None:
        """Adopt the videos a sandbox saved earlier (if any); they render on from creation."""
        if not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            videos = [_saved_video(v) for v in saved["videos"]]
            keys = [RememberedKey(**k) for k in saved.get("keys", [])]
        except (OSError, ValueError, KeyError, TypeError) as err:
            # Only an emulator's memory: a damaged file costs its old videos, never the run.
            log.warning("sandbox: ignoring %s (%s); starting with no videos", path, err)
            return
        for video in videos:
            self._add(video)
            # Renders still under way hold their slots in this sandbox too.
            self.slots.start(self.clock(), video.created_at + self.config.render_seconds)
        for key in keys:
            if key.video_id in self.videos:
                self.keys.restore(key)

    # --- reading ------------------------------------------------------------------------

    def render_status(self, video: Video) -> str:
        elapsed = self.clock() - video.created_at
        render = self.config.render_seconds
        if elapsed >= render:
            return "failed" if video.fails else "completed"
        return "pending" if elapsed < render * PENDING_SHARE else "processing"

    def page(
        self, limit: int, token: str | None, title: str | None = None
    ) -> tuple[list[Video], str | None]:
        """Newest first, only videos whose title contains ``title`` when given. The token
        names a position in creation order, so videos created between two page requests
        never shift or repeat items; it is ``None`` when no (matching) video is left."""
        order = self._order
        at = len(order) - 1 if token is None else _decode_token(token, len(order))

        def wanted(video: Video) -> bool:
            return title is None or title in (video.title or "")

        items: list[Video] = []
        while at >= 0 and len(items) < limit:
            if wanted(order[at]):
                items.append(order[at])
            at -= 1
        while at >= 0 and not wanted(order[at]):
            at -= 1
        return items, (_encode_token(at) if at >= 0 else None)

    def counters_view(self) -> dict[str, Any]:
        c = self.counters
        by_cb = c.created_by_callback_id
        return {
            "requests": c.requests,
            "created": len(self._order),
            "created_by_callback_id": dict(by_cb),
            "duplicates": sum(1 for n in by_cb.values() if n > 1),
            "violations": c.violations,
            "status_requests": c.status_requests,
            "list_requests": c.list_requests,
            "request_times": list(c.request_times),
            "request_times_by_account": {a: list(t) for a, t in c.request_times_by_account.items()},
            "violations_by_account": dict(c.violations_by_account),
            "v3_requests": c.v3_requests,
            "v3_created": sum(1 for v in self._order if v.api == "v3"),
            "v3_replays": c.v3_replays,
            "v3_in_progress": c.v3_in_progress,
            "created_by_idempotency_key": dict(c.created_by_idempotency_key),
            "v3_status_requests": c.v3_status_requests,
            "v3_statuses_requests": c.v3_statuses_requests,
            "v3_list_requests": c.v3_list_requests,
            "slot_refusals": c.slot_refusals,
            "sustained_refusals": c.sustained_refusals,
            "max_rendering": self.slots.most,
        }


def _encode_token(index: int) -> str:
    return base64.urlsafe_b64encode(f"sbx:{index}".encode()).decode()


def _decode_token(token: str, size: int) -> int:
    try:
        prefix, _, index = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        position = int(index)
    except ValueError as exc:  # covers bad base64 and bad UTF-8 too
        raise InvalidToken(token) from exc
    if prefix != "sbx" or not 0 <= position < size:
        raise InvalidToken(token)
    return position


def _video(
    video_id: str, request: VideoRequest | V3VideoRequest, *, created_at: float, fails: bool
) -> Video:
    if isinstance(request, VideoRequest):
        test, duration = bool(request.test), estimate_duration(request)
    else:
        test, duration = False, estimate_v3_duration(request)
    # ``cinematic_avatar`` documents no callback_id; one given passes through as an extra.
    callback_id = getattr(request, "callback_id", None)
    return Video(
        video_id=video_id,
        title=request.title,
        callback_id=None if callback_id is None else str(callback_id),
        created_at=created_at,
        request=request,
        test=test,
        duration=duration,
        fails=fails,
    )


def _saved_video(saved: Mapping[str, Any]) -> Video:
    body = saved["body"]
    request = validate_v3_request(body) if saved.get("api") == "v3" else validate_request(body)
    return _video(saved["video_id"], request, created_at=saved["created_at"], fails=saved["fails"])
