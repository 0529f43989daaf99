"""What crosses the API seam: typed calls, answers and statuses, and the two interfaces.

A ``Dialect`` is one HeyGen API (V2, v3) as pure functions: it turns a request into an
``HttpCall`` and an answer into ids, statuses or errors, and never does I/O. The one
transport (engine.api.transport) sends the calls; ``VideoApi`` is what the pool, poll
and reconcile see. They read ``ApiFeatures``, never an API's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from engine.errors import BadRequest, StatusError
from engine.request.responses import VideoListItem

#: The ledger's render states; every status word of every API maps onto one of these.
RenderState = Literal["pending", "processing", "completed", "failed"]
ApiName = Literal["v2", "v3"]
API_NAMES: tuple[ApiName, ...] = ("v2", "v3")


def api_name(text: str) -> ApiName:
    """The API a ledger row records; ``ValueError`` for a name no dialect speaks."""
    for name in API_NAMES:
        if text == name:
            return name
    raise ValueError(f"unknown HeyGen API {text!r}")


# Every status word HeyGen documents (v1 status, v3 detail, v3 bulk), in one place.
_STATES: dict[str, RenderState] = {
    "pending": "pending",
    "waiting": "pending",
    "queued": "pending",
    "draft": "pending",
    "processing": "processing",
    "completed": "completed",
    "failed": "failed",
}


def render_state(word: str) -> RenderState:
    """The ledger's state for a status word of either API; ``ValueError`` for another word."""
    try:
        return _STATES[word]
    except KeyError:
        raise ValueError(f"unknown video status {word!r}") from None


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One request, as data: what the transport sends (path is below the base URL)."""

    method: Literal["GET", "POST"]
    path: str
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    #: A success answered with text that is not JSON is a wrong address.
    json_only: bool = False


@dataclass(frozen=True, slots=True)
class ApiFeatures:
    """What an API can do; the engine branches on these, never on the API's name."""

    #: Creates carry an Idempotency-Key: a resend within ``replay_window_s`` of the first
    #: attempt replays its answer, so 500/502/504 and timeouts may be retried.
    idempotent_create: bool
    #: Seconds the service remembers an Idempotency-Key (HeyGen: 24 hours); None without.
    replay_window_s: float | None
    #: Ids one bulk status call may ask about; 0: no bulk status call.
    bulk_status_max: int
    #: Whether bodies may ask for free test renders (V2's ``test`` field).
    test_videos: bool
    #: Whether a video's status names its ``callback_id`` (the proof reconcile needs).
    list_has_callback_id: bool


@dataclass(frozen=True, slots=True)
class RenderStatus:
    """One video's render, as any API reports it."""

    video_id: str
    state: RenderState
    video_url: str | None = None
    thumbnail_url: str | None = None
    video_page_url: str | None = None
    subtitle_url: str | None = None
    callback_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    #: The video's length in seconds, once rendered (where the answer gives it).
    duration: float | None = None
    #: Unix seconds, when the service said.
    created_at: int | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded success answer: its HTTP status and JSON body (any shape)."""

    status: int
    body: Any


class Dialect(Protocol):
    """One HeyGen API as pure functions (no I/O); errors raised are EngineErrors."""

    name: ApiName
    features: ApiFeatures

    def create(self, body: str, idempotency_key: str | None) -> HttpCall: ...

    def created(self, answer: Answer) -> str | None: ...

    def status(self, video_id: str) -> HttpCall: ...

    def parsed_status(self, answer: Answer) -> RenderStatus: ...

    def statuses(self, video_ids: Sequence[str]) -> HttpCall: ...

    def parsed_statuses(self, answer: Answer) -> dict[str, RenderStatus | None]: ...

    def listing(self, token: str | None, limit: int, title: str | None = None) -> HttpCall: ...

    def parsed_listing(self, answer: Answer) -> tuple[list[VideoListItem], str | None]: ...

    def create_error(self, err: StatusError) -> StatusError: ...


class VideoApi(Protocol):
    """The service as the pool, poll and reconcile use it."""

    @property
    def features(self) -> ApiFeatures: ...

    async def create_video(self, body: str, *, idempotency_key: str | None = None) -> str: ...

    async def video_status(self, video_id: str) -> RenderStatus: ...

    async def video_statuses(self, video_ids: Sequence[str]) -> dict[str, RenderStatus | None]: ...

    async def video_list(
        self, token: str | None = None, limit: int = 100, title: str | None = None
    ) -> tuple[list[VideoListItem], str | None]: ...

    def service_clock_offset(self) -> float | None: ...


class ApiRouter(Protocol):
    """Every API over one transport: a job is sent to and asked about through the API
    its ledger row records."""

    def for_api(self, api: ApiName) -> VideoApi: ...


def blames_address(err: StatusError) -> bool:
    """Whether a create's answer blames the address rather than the job (either API).

    A redirect (never followed) or 405 always does. A 404 does when it is not in one of
    the service's own error shapes (a web server's "404: Not Found"): the service answers
    404 in its shape for a job naming, say, an avatar that does not exist.
    """
    if not isinstance(err, BadRequest):
        return False
    if 300 <= err.status < 400 or err.status == 405:
        return True
    return err.status == 404 and not heygen_shaped(err.body)


def heygen_shaped(body: Any) -> bool:
    """Whether an error body is in one of HeyGen's own shapes: ``{"error": {"code",
    "message"}}``, or the older ``{"code": 400144, "message"}`` whose codes have six
    digits (a web framework's ``{"error": "Not Found"}`` or ``{"code": 5}`` is not)."""
    if not isinstance(body, Mapping):
        return False
    error = body.get("error")
    if isinstance(error, Mapping):
        return bool({"code", "message"} & error.keys())
    code = body.get("code")
    return isinstance(code, int) and code >= 10_000 and isinstance(body.get("message"), str)
