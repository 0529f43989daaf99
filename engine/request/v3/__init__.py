"""HeyGen's v3 API: the ``POST /v3/videos`` body and the answers of the v3 video endpoints."""

from engine.request.v3.model import (
    AvatarVideoRequest,
    CinematicAvatarVideoRequest,
    ImageVideoRequest,
    StudioVideoRequest,
    V3VideoRequest,
)
from engine.request.v3.responses import (
    BULK_STATUSES,
    MAX_LIST_LIMIT,
    MAX_STATUS_IDS,
    V3Created,
    V3Error,
    V3ErrorEnvelope,
    V3ListPage,
    V3StatusItem,
    V3StatusPage,
    V3VideoDetail,
    parse_v3_created,
    parse_v3_list,
    parse_v3_statuses,
    parse_v3_video,
)
from engine.request.v3.validate import (
    v3_request_json_schema,
    v3_request_to_body,
    validate_v3_request,
)

__all__ = [
    "BULK_STATUSES",
    "MAX_LIST_LIMIT",
    "MAX_STATUS_IDS",
    "AvatarVideoRequest",
    "CinematicAvatarVideoRequest",
    "ImageVideoRequest",
    "StudioVideoRequest",
    "V3Created",
    "V3Error",
    "V3ErrorEnvelope",
    "V3ListPage",
    "V3StatusItem",
    "V3StatusPage",
    "V3VideoDetail",
    "V3VideoRequest",
    "parse_v3_created",
    "parse_v3_list",
    "parse_v3_statuses",
    "parse_v3_video",
    "v3_request_json_schema",
    "v3_request_to_body",
    "validate_v3_request",
]
