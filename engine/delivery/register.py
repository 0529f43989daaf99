"""``webhook register``: ``POST /v3/webhooks/endpoints`` and the secret it answers once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from engine.errors import ConfigError, UnreadableAnswer, make_status_error
from engine.service import is_loopback
from engine.submitter.constants import CONNECT_TIMEOUT_S, TOTAL_TIMEOUT_S

ENDPOINTS_PATH = "/v3/webhooks/endpoints"
EVENTS = ["avatar_video.success", "avatar_video.fail"]


@dataclass(frozen=True)
class Registered:
    endpoint_id: str | None
    secret: str


def check_webhook_url(url: str) -> None:
    """HeyGen delivers only to https; plain http is let through for loopback tests.

    Raises ConfigError naming the fix.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as err:
        raise ConfigError(f"--url '{url}': {err}.") from err
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback(host):
        return
    raise ConfigError(
        f"--url '{url}' must be an https:// address HeyGen can reach (plain http only "
        "for a loopback address, in tests); put `webhook serve` behind a TLS reverse "
        "proxy (see the README) and register its https URL."
    )


async def register_endpoint(base_url: str, api_key: str | None, url: str) -> Registered:
    """Register ``url`` for the two video events; raises a StatusError on refusal,
    ``UnreadableAnswer`` when the answer holds no secret."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["X-Api-Key"] = api_key
    timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
    async with (
        aiohttp.ClientSession(headers=headers, timeout=timeout) as session,
        session.post(
            base_url.rstrip("/") + ENDPOINTS_PATH,
            json={"url": url, "events": EVENTS},
            allow_redirects=False,
        ) as answer,
    ):
        try:
            body: Any = await answer.json(content_type=None)
        except ValueError:
            body = None
        if answer.status >= 300:
            raise make_status_error(answer.status, body)
    data = body.get("data") if isinstance(body, dict) else None
    secret = data.get("secret") if isinstance(data, dict) else None
    if not isinstance(secret, str) or not secret:
        raise UnreadableAnswer("the service registered the endpoint but sent no secret")
    endpoint_id = data.get("endpoint_id") if isinstance(data, dict) else None
    return Registered(endpoint_id if isinstance(endpoint_id, str) else None, secret)
