"""``heygen-batch sandbox``: run the HeyGen emulator standalone."""

from __future__ import annotations

import asyncio
import os

import click

from engine.cli.errors import epilog
from engine.errors import ConfigError
from engine.service import is_loopback
from engine.submitter.rate import parse_rate

KEY_ENV = "HEYGEN_SANDBOX_KEY"

_PROBABILITY = click.FloatRange(0, 1)
_NON_NEGATIVE = click.FloatRange(min=0)


def _rate_limit(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, float] | None:
    if value is None:
        return None
    try:
        # The same spelling as run's --rate, so a limit copied from one works in the other.
        rate = parse_rate(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).replace("--rate ", ""), ctx, param) from exc
    return rate.count, rate.period_s


def _retry_after(ctx: click.Context, param: click.Parameter, value: str) -> float | None:
    if value.lower() == "none":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise click.BadParameter("give seconds (e.g. 1 or 0.5) or 'none'", ctx, param)
    return seconds


@click.command(
    "sandbox",
    epilog=epilog(
        f"The server asks for an X-Api-Key only when {KEY_ENV} is set; it then refuses "
        "every other key with 401. It needs no HEYGEN_API_KEY itself, but a command sent "
        "to it with --base-url does: set HEYGEN_API_KEY to any value (or to the "
        f"{KEY_ENV} value); only --sandbox (an in-process sandbox) needs none. Stop it "
        "with Ctrl-C.\n\nExit codes: 0 stopped by Ctrl-C or SIGTERM; 1 the address "
        "cannot be bound, or is not loopback without --allow-remote; 2 a bad flag.",
        "heygen-batch sandbox --port 8000   # then, in another shell:\n"
        "  HEYGEN_API_KEY=any heygen-batch run jobs/demo.csv --template "
        "jobs/demo-template.json --key-column contact_id --base-url http://127.0.0.1:8000",
    ),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one (the startup line names it).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host that is not loopback (exposes the sandbox to the network).",
)
@click.option("--seed", default=0, show_default=True, help="Seed for every random decision.")
@click.option("--latency-ms", default=0.0, type=_NON_NEGATIVE, help="Added to each create.")
@click.option(
    "--latency-spread-ms",
    default=0.0,
    type=_NON_NEGATIVE,
    help="Latency varies uniformly by up to this much either way.",
)
@click.option("--rate-429", default=0.0, type=_PROBABILITY, help="Probability of a 429.")
@click.option(
    "--retry-after",
    default="1",
    show_default=True,
    callback=_retry_after,
    help="Retry-After seconds sent with injected 429s, or 'none'.",
)
@click.option("--rate-5xx", default=0.0, type=_PROBABILITY, help="Probability of a 5xx.")
@click.option(
    "--drop-before",
    default=0.0,
    type=_PROBABILITY,
    help="Probability of closing the connection before creating the video.",
)
@click.option(
    "--drop-after",
    default=0.0,
    type=_PROBABILITY,
    help="Probability of creating the video, then closing with no answer.",
)
@click.option(
    "--rate-limit",
    callback=_rate_limit,
    metavar="N/s|N/min|N/h",
    help="Server-side limit on request starts in any sliding window; "
    "requests over it get 429 and count as violations.",
)
@click.option(
    "--render-seconds",
    default=2.0,
    show_default=True,
    type=_NON_NEGATIVE,
    help="Simulated time from creation to a finished render.",
)
@click.option(
    "--render-failure-ratio",
    default=0.0,
    type=_PROBABILITY,
    help="Share of videos whose render fails.",
)
@click.option(
    "--credit-limit",
    type=click.IntRange(min=0),
    help="After this many non-test videos, answer insufficient_credit.",
)
@click.option(
    "--media-url-lifetime",
    default=7 * 24 * 3600.0,
    show_default=True,
    type=_NON_NEGATIVE,
    help="Seconds a media URL from a status answer works before it answers 403.",
)
@click.option(
    "--webhook-url",
    metavar="URL",
    help="POST a signed avatar_video.success/.fail delivery here when a render ends.",
)
@click.option(
    "--webhook-secret",
    metavar="S",
    help="The secret --webhook-url deliveries are signed with (HMAC-SHA256, header `signature`).",
)
@click.option(
    "--render-slots",
    type=click.IntRange(min=1),
    metavar="N",
    help="Renders in progress at once; a create beyond it gets 429 rate_limit_exceeded "
    "with Retry-After until the oldest render ends.",
)
@click.option(
    "--sustained-429-s",
    default=0.0,
    type=_NON_NEGATIVE,
    metavar="T",
    help="Refuse every create with 429 (and --retry-after) for the first T seconds.",
)
def sandbox(
    host: str,
    port: int,
    allow_remote: bool,
    seed: int,
    latency_ms: float,
    latency_spread_ms: float,
    rate_429: float,
    retry_after: float | None,
    rate_5xx: float,
    drop_before: float,
    drop_after: float,
    rate_limit: tuple[int, float] | None,
    render_seconds: float,
    render_failure_ratio: float,
    credit_limit: int | None,
    media_url_lifetime: float,
    webhook_url: str | None,
    webhook_secret: str | None,
    render_slots: int | None,
    sustained_429_s: float,
) -> None:
    """Serve a local emulator of HeyGen's video API, with optional fault injection.

    It answers POST /v2/video/generate, GET /v1/video_status.get and GET
    /v1/video.list like the service; the v3 ones too: POST /v3/videos (keeping
    Idempotency-Key for 24 hours), GET /v3/videos/{id}, GET /v3/videos/statuses
    and GET /v3/videos. It serves fake media at the URLs it hands out, registers
    webhook endpoints (POST /v3/webhooks/endpoints) and delivers signed webhooks
    to them. GET /_sandbox/counters is for tests (it also counts slot refusals and the
    most renders seen at once). Faults apply to create requests (both APIs) only.
    """
    if not allow_remote and not is_loopback(host):
        raise click.ClickException(
            f"refusing to bind {host}: it is not a loopback address. "
            "Use --host 127.0.0.1, or add --allow-remote to expose the sandbox."
        )
    if webhook_url and not webhook_secret:
        raise click.UsageError("--webhook-url needs --webhook-secret to sign its deliveries.")
    from engine.sandbox.config import SandboxConfig
    from engine.sandbox.runner import serve_forever

    config = SandboxConfig(
        api_key=os.environ.get(KEY_ENV) or None,
        seed=seed,
        latency_ms=latency_ms,
        latency_spread_ms=latency_spread_ms,
        rate_429=rate_429,
        retry_after_s=retry_after,
        rate_5xx=rate_5xx,
        drop_before=drop_before,
        drop_after=drop_after,
        rate_limit=rate_limit[0] if rate_limit else None,
        rate_limit_period_s=rate_limit[1] if rate_limit else 1.0,
        render_seconds=render_seconds,
        render_failure_ratio=render_failure_ratio,
        credit_limit=credit_limit,
        media_url_lifetime_s=media_url_lifetime,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        render_slots=render_slots,
        sustained_429_s=sustained_429_s,
    )
    try:
        asyncio.run(serve_forever(config, host, port, _announce))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    except KeyboardInterrupt:
        # Only reached where signal handlers cannot be installed (Windows).
        pass


def _announce(base_url: str) -> None:
    click.echo(f"Sandbox listening on {base_url}")
