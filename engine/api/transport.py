"""The one HTTP transport: a shared keep-alive session, errors mapped to EngineError.

It knows nothing of any API's paths or shapes (engine.api.v2, v3 do): it sends an
``HttpCall``, decodes the answer, keeps the service clock's lead from ``Date``, and
keeps the API key out of every error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from engine.api.port import HttpCall
from engine.errors import (
    ConnectFailed,
    ConnectionDropped,
    EngineError,
    PageForAnswer,
    RequestNotMade,
    RequestTimeout,
    StatusError,
    error_code_and_message,
    make_status_error,
)
from engine.submitter.constants import CONNECT_TIMEOUT_S, TOTAL_TIMEOUT_S
from engine.submitter.retry import parse_retry_after

_UTF8 = frozenset({"utf-8", "utf8"})
KEY_MASK = "[key]"
# What a key is made of: the key shows as a whole token, never inside a longer run of these.
_TOKEN_CHAR = r"[A-Za-z0-9_\-]"


def key_pattern(key: str) -> str:
    """Where ``key`` could really appear in a text: as a whole token.

    A short key is a substring of ordinary words ("x" in "rate_limit_exceeded");
    only a match standing alone is masked, so no other word is corrupted.
    """
    return rf"(?<!{_TOKEN_CHAR}){re.escape(key)}(?!{_TOKEN_CHAR})"


class Transport:
    """The one HTTP session to the service: sends ``HttpCall``s, maps failures to
    EngineErrors, and never logs or returns the key."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        concurrency: int = 8,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["X-Api-Key"] = api_key
        self._headers = headers
        self._key_mask = re.compile(key_pattern(api_key)) if api_key else None
        self._raw_key = api_key.encode() if api_key else b""
        self._raw_key_mask = re.compile(key_pattern(api_key).encode()) if api_key else None
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._service_offset: float | None = None
        self._answered = False

    def has_answered(self) -> bool:
        """Whether any request of this client got an HTTP answer (of any status): after
        one, a failure to connect is a passing fault, not a wrong address."""
        return self._answered

    def service_clock_offset(self) -> float | None:
        """At least how far the service's clock is ahead of ours (negative: behind), in
        seconds, from the ``Date`` header of its latest answer; None before any.

        A lower bound: the header has whole seconds and was written before the answer
        came back, so ``Date - arrival`` never overstates the service's lead.
        """
        return self._service_offset

    def _note_date(self, header: str | None) -> None:
        if header is None:
            return
        try:
            stamp = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return  # a malformed Date proves nothing about the service's clock
        # HTTP dates are GMT; one written "-0000" parses without a zone.
        service_now = stamp.replace(tzinfo=stamp.tzinfo or UTC).timestamp()
        self._service_offset = service_now - self._clock()

    async def __aenter__(self) -> Self:
        # One keep-alive session for the run; a connection per worker, plus a spare
        # for reconcile's listing.
        connector = aiohttp.TCPConnector(limit=max(self._concurrency, 1) + 2)
        self._session = aiohttp.ClientSession(
            headers=self._headers, connector=connector, timeout=self._timeout
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, call: HttpCall) -> Any:
        """One request; the decoded body, or the EngineError that says what happened.

        Transport errors are split by one question: could the service have the
        request? Only failures to connect (refused, unreachable, connect timeout)
        say no. Anything later, including a pooled keep-alive connection the
        server had closed, may have delivered it, so it is ``maybe_sent``.
        aiohttp never resends a POST by itself (only idempotent methods).
        ``call.json_only``: a success answered with text that is not JSON is ``WrongAddress``.
        """
        assert self._session is not None, "use Transport as an async context manager"
        try:
            async with self._session.request(
                call.method,
                self._base + call.path,
                data=call.body,
                params=call.params or None,
                headers=dict(call.headers) or None,
                # Never followed: a redirected POST would come back as a GET (301/302) or be
                # re-sent (307/308), and aiohttp would carry X-Api-Key to the new origin.
                allow_redirects=False,
            ) as response:
                self._answered = True
                self._note_date(response.headers.get("Date"))
                raw = self._unkeyed(await response.read())
                body = _decode(raw, response.charset)
                if response.status >= 300:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise make_status_error(response.status, body, retry_after)
                if call.json_only and isinstance(body, str):
                    _, page = error_code_and_message(body)
                    raise PageForAnswer(response.status, None, None, page)
                return body
        except EngineError as err:
            raise self.scrubbed(err) from err.__cause__
        except aiohttp.InvalidUrlClientError as err:
            if isinstance(err, aiohttp.RedirectClientError):
                # A redirect's target is refused after the request went out.
                raise self.scrubbed(
                    ConnectionDropped(f"malformed answer from {self._base}: {_describe(err)}")
                ) from err
            raise RequestNotMade(f"no request can be made to {self._base}: {err}") from err
        except aiohttp.ClientConnectorError as err:
            raise ConnectFailed(f"cannot connect to {self._base}: {err.os_error}") from err
        except aiohttp.ConnectionTimeoutError as err:
            raise ConnectFailed(f"timed out connecting to {self._base}") from err
        except TimeoutError as err:
            raise RequestTimeout(f"no answer from {self._base} in time") from err
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
            raise self.scrubbed(
                ConnectionDropped(f"connection to {self._base} dropped: {_describe(err)}")
            ) from err
        except aiohttp.ClientError as err:
            raise self.scrubbed(
                ConnectionDropped(f"malformed answer from {self._base}: {_describe(err)}")
            ) from err

    def _unkeyed(self, raw: bytes) -> bytes:
        """An answer with any echo of the key masked, before a message is cut from it
        (a cut through the key would leave a piece no mask recognises)."""
        mask = self._raw_key_mask
        if mask is None or self._raw_key not in raw:  # the usual answer: no regex run
            return raw
        return mask.sub(KEY_MASK.encode(), raw)

    def scrubbed(self, err: EngineError) -> EngineError:
        """The error with the API key masked out of its text: a second net.

        Messages are built from answers (already unkeyed) and aiohttp's errors, never
        from the request headers; error text reaches the ledger, the export and logs.
        """
        mask = self._key_mask
        if mask is None:
            return err
        err.args = tuple(mask.sub(KEY_MASK, a) if isinstance(a, str) else a for a in err.args)
        if isinstance(err, StatusError):
            err.message = mask.sub(KEY_MASK, err.message)
            err.body = None if mask.search(repr(err.body)) else err.body
        return err


def _describe(err: aiohttp.ClientError) -> str:
    """What went wrong, without ``repr``: aiohttp's carries the request headers, key included."""
    if isinstance(err, aiohttp.ClientResponseError):
        return f"{type(err).__name__} {err.status}: {err.message}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _decode(raw: bytes, charset: str | None) -> Any:
    """JSON when it is JSON, else the text for the error message; never raises."""
    if (charset or "utf-8").lower() in _UTF8:
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            pass  # not JSON, or JSON only Python's parser takes (NaN, huge integers)
    try:
        text = raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
