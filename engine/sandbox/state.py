"""The sandbox's videos and counters, with rendering simulated from the clock.

Rendering is computed lazily from ``created_at`` and the injectable clock, so tests
move time by changing the clock instead of sleeping, and no background task runs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.request import request_to_body, validate_request
from engine.request.model import SilenceVoiceSettings, TextVoiceSettings, VideoRequest
from engine.sandbox.config import SandboxConfig
from engine.sandbox.faults import FaultDecider, RenderSlots, SlidingWindowLimiter

log = logging.getLogger(__name__)

WORDS_PER_MINUTE = 150
#: An audio scene's real length is unknown without fetching it; assume this much.
AUDIO_SCENE_SECONDS = 10.0
#: Share of the render time a video stays ``pending`` before it is ``processing``.
PENDING_SHARE = 0.1


@dataclass
class Video:
    video_id: str
    title: str | None
    callback_id: str | None
    created_at: float
    request: VideoRequest
    test: bool
    duration: float
    fails: bool


@dataclass
class Counters:
    requests: int = 0
    violations: int = 0
    status_requests: int = 0
    list_requests: int = 0
    created_by_callback_id: dict[str, int] = field(default_factory=dict)
    #: ``time.monotonic()`` of every generate request's arrival, faulted or not.
    request_times: list[float] = field(default_factory=list)
    #: Creates refused because every render slot was busy, or by the sustained 429.
    slot_refusals: int = 0
    sustained_refusals: int = 0


@dataclass(frozen=True)
class Refusal:
    """Why a create is refused with 429 now, and the ``Retry-After`` to send (or None)."""

    message: str
    retry_after_s: float | None


class InvalidToken(ValueError):
    """A ``video.list`` paging token this sandbox did not hand out."""


class SandboxState:
    """Everything one sandbox remembers; ``reset`` starts it over with the same seed."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        c = self.config
        self.videos: dict[str, Video] = {}
        self._order: list[Video] = []
        self.counters = Counters()
        self.credits_used = 0
        self.started_at = self.clock()
        self.slots = RenderSlots(c.render_slots)
        self.faults = FaultDecider(c)
        self.limiter = (
            SlidingWindowLimiter(int(c.rate_limit), c.rate_limit_period_s)
            if c.rate_limit is not None
            else None
        )
        # Render failures get their own stream so turning a fault on does not change
        # which videos fail.
        self._rng = random.Random(c.seed + 1)

    # --- creation ---------------------------------------------------------------------

    def out_of_credit(self, request: VideoRequest) -> bool:
        limit = self.config.credit_limit
        return limit is not None and not request.test and self.credits_used >= limit

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

    def create_video(self, request: VideoRequest) -> Video:
        """Store a validated request as a new video."""
        ratio = self.config.render_failure_ratio
        video = Video(
            # Never seeded: a later sandbox on the same ledger (``run --sandbox`` again)
            # adopts this one's videos, and the service never hands out an id twice.
            video_id=secrets.token_hex(16),
            title=request.title,
            callback_id=request.callback_id,
            created_at=self.clock(),
            request=request,
            test=bool(request.test),
            duration=estimate_duration(request),
            fails=bool(ratio) and self._rng.random() < ratio,
        )
        self.videos[video.video_id] = video
        self._order.append(video)
        self.slots.start(video.created_at, video.created_at + self.config.render_seconds)
        if not video.test:
            self.credits_used += 1
        if video.callback_id is not None:
            by_cb = self.counters.created_by_callback_id
            by_cb[video.callback_id] = by_cb.get(video.callback_id, 0) + 1
        return video

    # --- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the videos (not the counters) so a later sandbox can answer for them."""
        videos = [
            {
                "video_id": v.video_id,
                "created_at": v.created_at,
                "fails": v.fails,
                "body": request_to_body(v.request),
            }
            for v in self._order
        ]
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"videos": videos}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            log.warning("sandbox: could not save its videos to %s (%s)", path, err)

    def load(self, path: Path) -> None:
        """Adopt the videos a sandbox saved earlier (if any); they render on from creation."""
        if not path.exists():
            return
        try:
            saved_videos = json.loads(path.read_text(encoding="utf-8"))["videos"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            # Only an emulator's memory: a damaged file costs its old videos, never the run.
            log.warning("sandbox: ignoring %s (%s); starting with no videos", path, err)
            return
        for saved in saved_videos:
            request = validate_request(saved["body"])
            video = Video(
                video_id=saved["video_id"],
                title=request.title,
                callback_id=request.callback_id,
                created_at=saved["created_at"],
                request=request,
                test=bool(request.test),
                duration=estimate_duration(request),
                fails=saved["fails"],
            )
            self.videos[video.video_id] = video
            self._order.append(video)
            # Renders still under way hold their slots in this sandbox too.
            self.slots.start(self.clock(), video.created_at + self.config.render_seconds)

    # --- reading ------------------------------------------------------------------------

    def render_status(self, video: Video) -> str:
        elapsed = self.clock() - video.created_at
        render = self.config.render_seconds
        if elapsed >= render:
            return "failed" if video.fails else "completed"
        return "pending" if elapsed < render * PENDING_SHARE else "processing"

    def page(self, limit: int, token: str | None) -> tuple[list[Video], str | None]:
        """Newest first. The token names a position in creation order, so videos
        created between two page requests never shift or repeat items."""
        start = len(self._order) - 1 if token is None else _decode_token(token, len(self._order))
        stop = max(start - limit, -1)
        items = [self._order[i] for i in range(start, stop, -1)]
        return items, (_encode_token(stop) if stop >= 0 else None)

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


def estimate_duration(request: VideoRequest) -> float:
    """Seconds of video: text at 150 words/min scaled by speed, plus silences and audio."""
    seconds = 0.0
    for scene in request.video_inputs:
        voice = scene.voice
        if isinstance(voice, TextVoiceSettings):
            seconds += len(voice.input_text.split()) * 60 / WORDS_PER_MINUTE / voice.speed
        elif isinstance(voice, SilenceVoiceSettings):
            seconds += voice.duration
        else:
            seconds += AUDIO_SCENE_SECONDS
    return round(seconds, 3)
