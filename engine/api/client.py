"""``HeyGenApi``: one dialect spoken over the shared transport; ``HeyGenClient``: the
transport and every API's ``HeyGenApi``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from engine.api.port import (
    Answer,
    ApiFeatures,
    ApiName,
    Dialect,
    HttpCall,
    RenderStatus,
)
from engine.api.transport import Transport
from engine.api.v2 import V2Dialect
from engine.api.v3 import V3Dialect
from engine.errors import StatusError, UnreadableAnswer, make_status_error
from engine.request.catalogue import (
    AVATARS_PATH,
    VOICES_PATH,
    AvatarList,
    VoiceList,
    parse_avatars,
    parse_voices,
)
from engine.request.responses import VideoListItem
from engine.submitter.constants import CONNECT_TIMEOUT_S, TOTAL_TIMEOUT_S

_T = TypeVar("_T")

_DIALECTS: dict[ApiName, Callable[[], Dialect]] = {"v2": V2Dialect, "v3": V3Dialect}


def dialect_for(api: ApiName) -> Dialect:
    return _DIALECTS[api]()


class HeyGenApi:
    """The ``VideoApi`` of one HeyGen API: a pure dialect's calls sent by the transport."""

    def __init__(self, transport: Transport, dialect: Dialect) -> None:
        self._transport = transport
        self._dialect = dialect

    @property
    def features(self) -> ApiFeatures:
        return self._dialect.features

    def service_clock_offset(self) -> float | None:
        return self._transport.service_clock_offset()

    def has_answered(self) -> bool:
        """Whether any request of this client got an HTTP answer (see ``Transport``)."""
        return self._transport.has_answered()

    async def create_video(self, body: str, *, idempotency_key: str | None = None) -> str:
        """POST one serialised request body; the new video's id.

        Raises the dialect's reading of an error status (``LegacyApi``, ``WrongAddress``,
        ``RequestInProgress``, ...), a TransportError, or ``UnreadableAnswer`` for a
        success naming no video.
        """
        dialect = self._dialect
        try:
            body_out = await self._transport.send(dialect.create(body, idempotency_key))
        except StatusError as err:
            refined = dialect.create_error(err)
            if refined is err:
                raise
            raise refined from err
        video_id = dialect.created(Answer(200, body_out))
        if video_id is None:
            raise self._transport.scrubbed(
                UnreadableAnswer(f"the service answered without a video_id: {str(body_out)[:200]}")
            )
        return video_id

    async def video_status(self, video_id: str) -> RenderStatus:
        """One video's render; a malformed answer is a 502 ``ServerError``."""
        dialect = self._dialect
        return await self._read(dialect.status(video_id), dialect.parsed_status)

    async def video_statuses(self, video_ids: Sequence[str]) -> dict[str, RenderStatus | None]:
        """Renders of 1 to ``features.bulk_status_max`` videos in one call; None for a
        video the service does not know. ``ValueError`` where the API has no bulk status
        or for too many ids."""
        dialect = self._dialect
        return await self._read(dialect.statuses(video_ids), dialect.parsed_statuses)

    async def video_list(
        self, token: str | None = None, limit: int = 100, title: str | None = None
    ) -> tuple[list[VideoListItem], str | None]:
        """A page of videos, newest first, and the next page's token (None on the last)."""
        dialect = self._dialect
        return await self._read(dialect.listing(token, limit, title), dialect.parsed_listing)

    async def _read(self, call: HttpCall, parse: Callable[[Answer], _T]) -> _T:
        body: Any = await self._transport.send(call)
        try:
            return parse(Answer(200, body))
        except ValueError as err:
            raise make_status_error(502, body) from err


class HeyGenClient:
    """The service over one keep-alive transport: ``for_api`` gives each API's
    ``HeyGenApi``; the calls below speak ``api`` (V2 by default), for commands and tests
    that speak one API. Use it as an async context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        concurrency: int = 8,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        api: ApiName = "v2",
    ) -> None:
        self._transport = Transport(
            base_url,
            api_key,
            concurrency,
            connect_timeout_s=connect_timeout_s,
            total_timeout_s=total_timeout_s,
            clock=clock,
        )
        self._apis = {name: HeyGenApi(self._transport, make()) for name, make in _DIALECTS.items()}
        self._default = self._apis[api]

    async def __aenter__(self) -> Self:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc, tb)

    def for_api(self, api: ApiName) -> HeyGenApi:
        return self._apis[api]

    @property
    def features(self) -> ApiFeatures:
        return self._default.features

    def service_clock_offset(self) -> float | None:
        return self._transport.service_clock_offset()

    def has_answered(self) -> bool:
        """Whether any request of this client got an HTTP answer (see ``Transport``)."""
        return self._transport.has_answered()

    async def create_video(
        self, body: Mapping[str, Any] | str, *, idempotency_key: str | None = None
    ) -> str:
        """POST one request (a body, or one already serialised); the new video's id."""
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return await self._default.create_video(text, idempotency_key=idempotency_key)

    async def video_status(self, video_id: str) -> RenderStatus:
        return await self._default.video_status(video_id)

    async def video_statuses(self, video_ids: Sequence[str]) -> dict[str, RenderStatus | None]:
        return await self._default.video_statuses(video_ids)

    async def video_list(
        self, token: str | None = None, limit: int = 100, title: str | None = None
    ) -> tuple[list[VideoListItem], str | None]:
        return await self._default.video_list(token, limit, title)

    async def avatars(self) -> AvatarList:
        """``GET /v2/avatars``: the avatars and talking photos the key can use."""
        return await self._catalogue(AVATARS_PATH, parse_avatars)

    async def voices(self) -> VoiceList:
        """``GET /v2/voices``: the voices the key can use."""
        return await self._catalogue(VOICES_PATH, parse_voices)

    async def _catalogue(self, path: str, parse: Callable[[Any], _T]) -> _T:
        body: Any = await self._transport.send(HttpCall("GET", path))
        try:
            return parse(body)
        except ValueError as err:
            raise make_status_error(502, body) from err
