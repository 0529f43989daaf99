"""``download`` and ``webhook serve`` / ``webhook register``: getting the videos out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import cast

import aiohttp
import click
from yarl import URL

from engine.api.client import HeyGenClient
from engine.cli.config_file import config_option
from engine.cli.errors import (
    ENVIRONMENT,
    SummaryCommand,
    UserError,
    epilog,
    note_ledger,
    user_errors,
)
from engine.cli.options import (
    ledger_option,
    ledger_spec,
    rate_option,
    resolve_rate,
    resolve_where,
    service_options,
)
from engine.delivery.download import (
    KINDS,
    Downloader,
    DownloadResult,
    Kind,
    NoProgress,
    Progress,
)
from engine.delivery.register import Registered, check_webhook_url, register_endpoint
from engine.errors import AbortRun, ConfigError, EngineError
from engine.ledger import Ledger
from engine.service import Service, service_address
from engine.submitter.constants import CONNECT_TIMEOUT_S, DOWNLOAD_TIMEOUT_S
from engine.submitter.rate import Rate, make_limiter

SECRET_VARIABLE = "HEYGEN_WEBHOOK_SECRET"
DOWNLOAD_CONCURRENCY = 4


def _kinds(text: str) -> list[Kind]:
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in KINDS]
    if unknown or not wanted:
        raise click.BadParameter(
            f"give a comma-separated list of {', '.join(KINDS)} (not {', '.join(unknown)}).",
            param_hint="--what",
        )
    return [cast(Kind, w) for w in wanted]


async def _download(
    ledger: Ledger,
    service: Service,
    rate: Rate,
    folder: Path,
    what: list[Kind],
    concurrency: int,
    show: bool,
) -> DownloadResult:
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
    async with (
        service_address(service, ledger.file) as (base_url, key),
        HeyGenClient(base_url, key) as client,
        # Its own session: the storage host never gets the API key. Bytes as sent, so
        # the length check compares like with like.
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as media,
    ):
        bar: contextlib.AbstractContextManager[Progress] = (
            _bar() if show else contextlib.nullcontext(NoProgress())
        )
        with bar as progress:
            downloader = Downloader(
                ledger, client, media, make_limiter(rate), folder, what,
                concurrency=concurrency, progress=progress,
            )  # fmt: skip
            return await downloader.run()


def _bar() -> contextlib.AbstractContextManager[Progress]:
    # rich is imported only when a bar is shown: a cron run never pays for it.
    from engine.delivery.progress import DownloadBar

    return DownloadBar()


@click.command(
    # For its exit 130 on Ctrl-C: a download cut there leaves only .part files, removed.
    cls=SummaryCommand,
    epilog=epilog(
        "Exit codes: 0 every completed video saved (or already there); 1 some files failed "
        "(see the log; run again to retry them); 2 usage or configuration error (no key and "
        "no --sandbox, no such ledger, a bad --config key), or the folder cannot be written "
        "(full disk, no permission); 3 the service refused the key; 75 another run holds "
        "the ledger; 130 interrupted (partial .part files are removed). " + ENVIRONMENT,
        "heygen-batch download --ledger runs/demo.db --to runs/videos --sandbox",
    ),
)
@ledger_option(required=True)
@config_option
@click.option(
    "--to",
    "folder",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to save into, as <job key>.mp4 (the key made safe for a file name).",
)
@click.option(
    "--what",
    default="video",
    show_default=True,
    help="Comma-separated: video (.mp4), captions (.srt), thumbnail (.jpg).",
)
@click.option(
    "--concurrency",
    default=DOWNLOAD_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Files downloaded at once.",
)
@service_options
@rate_option
@click.option("--no-progress", is_flag=True, help="Never show the progress bar.")
def download(
    ledger: str,
    campaign: str | None,
    folder: Path,
    what: str,
    concurrency: int,
    base_url: str | None,
    sandbox: bool,
    rate: str,
    no_progress: bool,
) -> None:
    """Save every completed video of a ledger under --to, and record file_path.

    --rate paces status calls (fresh URLs for expired ones, caption URLs); files
    already saved whole are skipped, so running it again finishes what is left.
    """
    spec = ledger_spec(ledger, campaign)
    note_ledger(spec)
    kinds = _kinds(what)
    parsed = resolve_rate(rate)
    service = resolve_where(base_url, sandbox)
    show = not no_progress and sys.stderr.isatty()
    with user_errors():
        spec.require()
        with spec.lock():
            store = spec.open(create=False)
            try:
                result = asyncio.run(
                    _download(store, service, parsed, folder.absolute(), kinds, concurrency, show)
                )
            finally:
                store.close()
    click.echo(
        f"{result.saved} saved ({result.bytes:,} bytes), {result.skipped} already there, "
        f"{result.not_completed} not completed yet (skipped)"
        + (f", {result.unavailable} with no such file at the service" if result.unavailable else "")
        + (f", {result.errors} failed (see the log; run again to retry)" if result.errors else "")
        + "."
    )
    if result.errors:
        raise SystemExit(1)


@click.group(
    epilog=epilog(
        "Exit codes: those of the subcommand (see `heygen-batch webhook serve --help` and "
        "`heygen-batch webhook register --help`); 2 for an unknown subcommand. "
        "Environment: HEYGEN_API_KEY and HEYGEN_BASE_URL (both subcommands), "
        "HEYGEN_WEBHOOK_SECRET (serve: the secret register printed).",
        "heygen-batch webhook register --url https://hooks.example.com/webhook\n"
        "  HEYGEN_WEBHOOK_SECRET=... heygen-batch webhook serve --ledger runs/demo.db",
    ),
)
def webhook() -> None:
    """Receive HeyGen's render webhooks into a ledger, or register the receiver's URL."""


@webhook.command(
    epilog=epilog(
        "Exit codes: 0 stopped cleanly (Ctrl-C); 2 no secret, or a usage or configuration "
        "error; 3 never: a status call the service refuses (even the key) answers that "
        "delivery 503, logged, so HeyGen sends it again. The secret comes from $"
        + SECRET_VARIABLE
        + " (printed once by `webhook register`). Bind a public address only behind a TLS "
        "reverse proxy. " + ENVIRONMENT,
        "heygen-batch webhook serve --ledger runs/demo.db --port 8080",
    ),
)
@ledger_option(required=True)
@service_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one (the startup line names it).",
)
def serve(
    ledger: str, campaign: str | None, base_url: str | None, sandbox: bool, host: str, port: int
) -> None:
    """Take avatar_video.success/.fail deliveries at POST /webhook, check their
    signature, confirm each video with one status call, and update the ledger."""
    secret = os.environ.get(SECRET_VARIABLE, "").strip()
    if not secret:
        raise UserError(
            f"No webhook secret: set {SECRET_VARIABLE} to the secret `heygen-batch webhook "
            "register` printed (deliveries cannot be verified without it)."
        )
    spec = ledger_spec(ledger, campaign)
    service = resolve_where(base_url, sandbox)
    with user_errors():
        spec.require()
        store = spec.open(create=False)
        try:
            asyncio.run(_serve(store, service, secret, host, port))
        except OSError as err:
            raise UserError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
        finally:
            store.close()


async def _serve(ledger: Ledger, service: Service, secret: str, host: str, port: int) -> None:
    from aiohttp import web

    from engine.delivery.webhook import WEBHOOK_PATH, create_webhook_app, webhook_runner
    from engine.sandbox.runner import until_stopped

    # What each delivery did is the point of a long-running receiver: shown by default.
    logging.getLogger("engine.delivery.webhook").setLevel(logging.INFO)
    async with (
        service_address(service, ledger.file) as (api_url, key),
        HeyGenClient(api_url, key) as client,
    ):
        runner = webhook_runner(create_webhook_app(ledger, client, secret))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound_host, bound_port = runner.addresses[0][:2]
            url = URL.build(scheme="http", host=bound_host, port=bound_port, path=WEBHOOK_PATH)
            click.echo(f"Webhook receiver listening on {url}")
            await until_stopped()
        finally:
            await runner.cleanup()


@webhook.command(
    epilog=epilog(
        "Exit codes: 0 registered (the secret is printed); 2 usage or configuration error "
        "(no key, a URL that is not https, the service unreachable or refusing the "
        "registration); 3 the service refused the key. " + ENVIRONMENT,
        "heygen-batch webhook register --url https://hooks.example.com/webhook",
    ),
)
@click.option(
    "--url",
    required=True,
    metavar="HTTPS-URL",
    help="The public https address of `webhook serve` (its path is /webhook).",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="API address (default: $HEYGEN_BASE_URL, else https://api.heygen.com).",
)
def register(url: str, base_url: str | None) -> None:
    """Register URL for avatar_video.success and .fail events (POST
    /v3/webhooks/endpoints) and print the signing secret, which is shown only once."""
    service = resolve_where(base_url, False)
    assert service.base_url is not None
    with user_errors():
        check_webhook_url(url)
        try:
            registered: Registered = asyncio.run(
                register_endpoint(service.base_url, service.api_key, url)
            )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ConfigError(
                f"cannot reach the service to register the endpoint ({type(err).__name__}); "
                "check --base-url / HEYGEN_BASE_URL and try again."
            ) from err
        except EngineError as err:
            if isinstance(err, (ConfigError, AbortRun)):
                raise
            raise UserError(f"the service refused the registration: {err}") from err
    click.echo(f"Registered {url} (endpoint {registered.endpoint_id or 'id not given'}).")
    click.echo(f"secret: {registered.secret}")
    click.echo(
        f"Store it now in {SECRET_VARIABLE} for `webhook serve`: the service never shows it again."
    )
