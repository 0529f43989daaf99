"""What the sandbox injects and how it behaves, set by flags or in-process."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SandboxConfig:
    """Behaviour of one sandbox; every probability is in [0, 1] and drawn from ``seed``.

    Faults (latency, 429, 5xx, drops, the server-side rate limit, the credit limit,
    render slots, a sustained 429) apply to creates (``POST /v2/video/generate`` and
    ``POST /v3/videos``) only, so polling and reconciling stay reliable.
    """

    #: When set, every HeyGen path needs this exact ``X-Api-Key`` or answers 401.
    api_key: str | None = None
    seed: int = 0
    latency_ms: float = 0
    #: Latency is drawn uniformly from ``latency_ms ± latency_spread_ms`` (never below 0).
    latency_spread_ms: float = 0
    rate_429: float = 0
    #: ``Retry-After`` sent with injected 429s; ``None`` sends none.
    retry_after_s: float | None = 1.0
    rate_5xx: float = 0
    #: The request is read, then the connection closed before any video is created.
    drop_before: float = 0
    #: The video is created, then the connection closed with no response.
    drop_after: float = 0
    #: At most this many request starts in any sliding window of ``rate_limit_period_s``;
    #: the rest answer 429 and count as violations. ``None`` disables the limit.
    rate_limit: float | None = None
    rate_limit_period_s: float = 1.0
    render_failure_ratio: float = 0
    #: Simulated seconds from creation to completion (pending for the first 10%).
    render_seconds: float = 2.0
    #: After this many non-test videos, answers 400 ``insufficient_credit``.
    credit_limit: int | None = None
    #: Media URLs in a status answer stop working (403, as the service's signed URLs
    #: do) this many seconds after that answer.
    media_url_lifetime_s: float = 7 * 24 * 3600
    #: When a render ends, a delivery signed with ``webhook_secret`` is POSTed here.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    #: Renders in progress at once (HeyGen: 10 on a pay-as-you-go key); a create beyond
    #: it answers 429 ``rate_limit_exceeded`` with ``Retry-After`` until the oldest render
    #: ends. ``None``: no cap.
    render_slots: int | None = None
    #: Every create is refused with 429 (``Retry-After``: ``retry_after_s``) for this
    #: many seconds from the sandbox's start (or reset): a storm to ride out.
    sustained_429_s: float = 0

    def __post_init__(self) -> None:
        for name in (
            "rate_429",
            "rate_5xx",
            "drop_before",
            "drop_after",
            "render_failure_ratio",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability from 0 to 1, got {value}")
        for name in ("latency_ms", "latency_spread_ms", "render_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        if self.rate_limit is not None and (
            self.rate_limit < 1 or not float(self.rate_limit).is_integer()
        ):
            raise ValueError("rate_limit must be a whole number of requests, at least 1")
        if self.rate_limit_period_s <= 0:
            raise ValueError("rate_limit_period_s must be positive")
        if self.credit_limit is not None and self.credit_limit < 0:
            raise ValueError("credit_limit must not be negative")
        if self.media_url_lifetime_s < 0:
            raise ValueError("media_url_lifetime_s must not be negative")
        if self.webhook_url is not None and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret to sign its deliveries")
        if self.render_slots is not None and self.render_slots < 1:
            raise ValueError("render_slots must be at least 1")
        if self.sustained_429_s < 0:
            raise ValueError("sustained_429_s must not be negative")

    @property
    def injects_faults(self) -> bool:
        """Whether any per-request draw is needed; lets the zero-fault path skip the RNG."""
        return bool(
            self.latency_ms
            or self.latency_spread_ms
            or self.rate_429
            or self.rate_5xx
            or self.drop_before
            or self.drop_after
        )
