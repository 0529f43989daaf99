"""Every failure the engine can raise, under one root.

Input errors (a bad row, a body the schema refuses) are kept apart from
transport errors (the request never got an answer) and status errors (the
service answered with an error). ``make_status_error`` is the one place that
turns an HTTP status and body into an exception.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from engine.submitter.constants import ERROR_TEXT_MAX_CHARS


class EngineError(Exception):
    """Root of every error raised by heygen-batch."""


class ConfigError(EngineError):
    """A usage or configuration problem: bad flag, unreadable file, bad template, no key."""


# --- ledger database errors ---------------------------------------------------------------


def without_password(url: str) -> str:
    """A database URL (``postgresql://user:secret@host/db?password=...``) or conninfo
    (``host=... password=...``) as it may be shown: every password removed. Parsed by
    hand: a password may hold what ``urlsplit`` refuses (``[``)."""
    user_info = _URL_USER_INFO.match(url)
    if user_info is None:
        return _CONNINFO_PASSWORD.sub("", url).strip()
    scheme, user = user_info.group(1), user_info.group(2)
    base, _, query = url[user_info.end() :].partition("?")
    kept = "&".join(p for p in query.split("&") if p and not p.lower().startswith("password="))
    at = "" if user is None else f"{user.partition(':')[0]}@"
    return f"{scheme}{at}{base}" + (f"?{kept}" if kept else "")


_URL_USER_INFO = re.compile(r"(postgres(?:ql)?://)(?:([^@/?#]*)@)?", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"\bpassword\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)\s*", re.IGNORECASE)


class LeaseLost(EngineError):
    """A worker's lease expired or was taken over: it must send nothing more; its claims
    are free for other workers, and its unanswered jobs are reconciled."""


# --- input errors -------------------------------------------------------------------------


class Reason(StrEnum):
    """Why a row is invalid: the fixed set ``validate`` and ``run --dry-run`` count by."""

    EMPTY_CELL = "empty_cell"
    CONTROL_CHARACTER = "control_character"
    MISSING_COLUMN = "missing_column"
    MISSING_KEY = "missing_key"
    ROW_SHAPE = "row_shape"
    SCHEMA = "schema"
    # Not invalid, but never sent: a job key seen earlier in the same file.
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, named by its path (``video_inputs[0].voice.speed``).

    ``reason`` is None until the error is raised: the ``InputError`` carrying it then
    gives it that error's own reason, so only the makers of a finer reason name one.
    It is a tally's label, not part of what the error says, so equality ignores it.
    """

    path: str
    message: str
    reason: Reason | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InputError(EngineError):
    """A row or request that cannot be sent as it is; the other rows go on."""

    reason = Reason.SCHEMA

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(
            e if e.reason is not None else replace(e, reason=self.reason) for e in errors
        )
        super().__init__("; ".join(str(e) for e in self.errors))


class RowError(InputError):
    """The source row itself is unusable (ragged CSV row, malformed JSON, missing column)."""

    reason = Reason.ROW_SHAPE


class RequestInvalid(InputError):
    """The rendered request breaks the V2 or v3 schema."""

    reason = Reason.SCHEMA


# --- transport errors ---------------------------------------------------------------------


class TransportError(EngineError):
    """No HTTP answer came back.

    ``maybe_sent`` is the question that decides between retrying and ``uncertain``:
    could the service have received the whole request?
    """

    maybe_sent: bool = True


class ConnectFailed(TransportError):
    """The connection could not be made, so nothing was sent."""

    maybe_sent = False


class RequestNotMade(ConnectFailed):
    """No request could be formed (an address aiohttp refuses), so nothing was sent."""


class ConnectionDropped(TransportError):
    """The connection broke after the request was written."""


class RequestTimeout(TransportError):
    """No answer in time; the request may have been received."""


class UnreadableAnswer(TransportError):
    """A success status whose body names no video: it may have created one all the same."""


# --- status errors ------------------------------------------------------------------------


class StatusError(EngineError):
    """The service answered with an error status."""

    def __init__(self, status: int, body: Any, code: str | None, message: str) -> None:
        self.status = status
        self.body = body
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status}{f' {code}' if code else ''}: {message}")


class BadRequest(StatusError):
    """A 4xx the service will answer the same way again: the job fails."""


class RateLimited(StatusError):
    """429: slow down, honouring ``retry_after`` seconds when the service gave one."""

    def __init__(
        self, status: int, body: Any, code: str | None, message: str, retry_after: float | None
    ) -> None:
        super().__init__(status, body, code, message)
        self.retry_after = retry_after


class RequestInProgress(StatusError):
    """409 ``request_in_progress``: the first request with this Idempotency-Key is still
    being processed (v3). Wait and send the same key again; the job has not failed."""


class ServerError(StatusError):
    """5xx: the service had a fault; the request may be retried (after ``retry_after``
    seconds when the service gave one, as a 503 for maintenance does)."""

    def __init__(
        self,
        status: int,
        body: Any,
        code: str | None,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, body, code, message)
        self.retry_after = retry_after


class AbortRun(StatusError):
    """The whole run must stop: no further request can succeed.

    ``maybe_sent``: whether the request that met it may still have reached the service
    (the job is then ``uncertain``, not ``pending``).
    """

    maybe_sent = False


class KeyRefused(AbortRun):
    """401/403: the API key was refused."""


class OutOfCredit(AbortRun):
    """402 or an out-of-credit/trial-limit code: the account cannot pay for more videos."""


class WrongAddress(AbortRun):
    """The create endpoint is not there (404/405) or moved (3xx): the address is wrong,
    not the job, so no job is failed for it."""


class PageForAnswer(WrongAddress):
    """A success answered with a page that is not JSON (a proxy's or captive portal's):
    the address is wrong, and the run stops. A gateway may have forwarded the request
    before it answered with its own page, so the job is ``uncertain``, for reconcile."""

    maybe_sent = True


class ServiceUnreachable(WrongAddress):
    """No connection can be opened to the service: the address (or the network) is
    wrong, or the service went away, not the jobs, so none of them is failed.

    ``given_by`` names where the address came from (``--base-url``,
    ``HEYGEN_BASE_URL``, or "" for the default), for the message; ``answered_before``:
    the service answered earlier in the run (so jobs were sent before it went away).
    """

    def __init__(self, message: str, given_by: str, answered_before: bool = False) -> None:
        super().__init__(0, None, None, message)
        self.given_by = given_by
        self.answered_before = answered_before


#: A trial key's daily cap (HTTP 429 on v3): stop, do not retry until tomorrow.
TRIAL_CAP_CODE = "trial_video_limit_exceeded"
IN_PROGRESS_CODE = "request_in_progress"


class LegacyApi(WrongAddress):
    """The V2 endpoint answered that it is gone or legacy (410, a deprecation message,
    the "use Avatar IV or Avatar V" refusal): the template must move to v3."""


OUT_OF_CREDIT_CODES = frozenset({"insufficient_credit", TRIAL_CAP_CODE})


def error_code_and_message(body: Any) -> tuple[str | None, str]:
    """Read the code and message from any of the service's three error shapes.

    A body in none of them (a proxy's page, plain text) gives one short line: an
    HTML page its title, any other text its first ``ERROR_TEXT_MAX_CHARS``.
    """
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code = err.get("code")
            message = err.get("message")
            return (str(code) if code is not None else None, one_line(message or code or "error"))
        if isinstance(err, str) and err:
            return None, one_line(err)
        if "message" in body or "code" in body:
            code = body.get("code")
            return (str(code) if code is not None else None, one_line(body.get("message") or code))
    if isinstance(body, str) and body.strip():
        return None, _page_title(body) or one_line(body)
    return None, "no error message in the response"


_HTML = re.compile(r"<(?:!doctype\s+html|html|head|body|title)\b", re.IGNORECASE)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _page_title(text: str) -> str | None:
    """The title of an HTML page (else its first heading); None when ``text`` is no page."""
    if not _HTML.search(text[:2000]):
        return None
    found = _TITLE.search(text) or _HEADING.search(text)
    title = one_line(html.unescape(_TAG.sub(" ", found.group(1)))) if found else ""
    return title or "an HTML page with no title"


def one_line(text: object, limit: int = ERROR_TEXT_MAX_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters: what an error kept in the
    ledger, the export and a log line may be."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def make_status_error(status: int, body: Any, retry_after: float | None = None) -> StatusError:
    """Map an HTTP error status and its body to the exception that says what to do next."""
    code, message = error_code_and_message(body)
    if status in (401, 403):
        return KeyRefused(status, body, code, message)
    if status == 402 or code in OUT_OF_CREDIT_CODES:
        return OutOfCredit(status, body, code, message)
    if status == 409 and code == IN_PROGRESS_CODE:
        return RequestInProgress(status, body, code, message)
    if status == 429:
        return RateLimited(status, body, code, message, retry_after)
    if status >= 500:
        return ServerError(status, body, code, message, retry_after)
    return BadRequest(status, body, code, message)
