"""Where requests go: a real address with the user's key, or the built-in sandbox."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, as in a URL) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DEFAULT_BASE_URL = "https://api.heygen.com"
KEY_VARIABLE = "HEYGEN_API_KEY"
BASE_URL_VARIABLE = "HEYGEN_BASE_URL"


@dataclass(frozen=True)
class Service:
    """Resolved before any work starts. ``repr`` never shows the key."""

    base_url: str | None  # None: start the sandbox
    api_key: str | None
    #: Where ``base_url`` came from, for a message that must name it: ``--base-url``,
    #: ``HEYGEN_BASE_URL``, or "" for the default address.
    given_by: str = ""

    def __repr__(self) -> str:
        where = self.base_url or "sandbox"
        return f"Service({where}, key={'set' if self.api_key else 'unset'})"

    @property
    def is_sandbox(self) -> bool:
        return self.base_url is None


def resolve_service(
    base_url: str | None, sandbox: bool, key_variable: str = KEY_VARIABLE
) -> Service:
    """``key_variable``: the environment variable the key is read from (a campaign of a
    PostgreSQL ledger may name its own, ``enqueue --key-env``)."""
    if sandbox:
        if base_url:
            raise ConfigError("--base-url and --sandbox conflict: give one of them.")
        return Service(None, None)
    key = os.environ.get(key_variable, "").strip() or None
    if key is None:
        raise ConfigError(
            f"No API key: set {key_variable} in the environment, "
            "or try the campaign against the built-in emulator with --sandbox."
        )
    _check_key(key, key_variable)
    from_env = os.environ.get(BASE_URL_VARIABLE, "").strip()
    url = base_url or from_env or DEFAULT_BASE_URL
    given_by = "--base-url" if base_url else BASE_URL_VARIABLE if from_env else ""
    _check_url(url, given_by or "--base-url")
    return Service(url.rstrip("/"), key, given_by)


def _check_key(key: str, variable: str) -> None:
    """A key no HTTP header can carry (a pasted CR LF, a DEL) is refused before any job
    is marked: sent, it would fail inside the request with the job left in flight."""
    for position, char in enumerate(key, 1):
        if not (char.isascii() and char.isprintable()):
            # The character's code point and place only: the key itself is never shown.
            raise ConfigError(
                f"{variable} holds U+{ord(char):04X} at character {position}, which an "
                "API key never has (a line end or control character pasted with it?); "
                "set it to the key alone."
            )


def _check_url(url: str, given_by: str) -> None:
    """An address no request can be made to is refused before any job is marked."""
    fix = "give the service's address, such as https://api.heygen.com"
    if any(not (c.isascii() and c.isprintable()) or c.isspace() for c in url):
        # Shown escaped: the raw characters would break the message's line.
        raise ConfigError(f"{given_by} {url!r} holds a space or control character; {fix}.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"{given_by} '{url}': {err}; {fix}.") from err
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{given_by} '{url}' must start with http:// or https://.")
    if not parts.hostname:
        raise ConfigError(f"{given_by} '{url}' names no host; {fix}.")
    if port == 0:
        raise ConfigError(f"{given_by} '{url}': port 0 cannot be connected to; {fix}.")


@asynccontextmanager
async def service_address(
    service: Service, ledger: Path | None
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (base URL, key); starts and stops the in-process sandbox when asked for.

    The sandbox keeps its videos beside the ledger (``<ledger>.sandbox.json``), so a
    later ``poll --sandbox`` or ``reconcile --sandbox`` on that ledger finds them; with
    no ledger (``avatars``, ``voices``) it keeps nothing.
    """
    if service.base_url is not None:
        yield service.base_url, service.api_key
        return
    from engine.sandbox.runner import running_sandbox

    state_file = sandbox_state_file(ledger) if ledger is not None else None
    async with running_sandbox(state_file=state_file) as sandbox:
        yield sandbox.base_url, None


def sandbox_state_file(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".sandbox.json")
