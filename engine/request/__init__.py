"""The V2 request body: its models, validation and the service's response shapes."""

from engine.request.model import VideoRequest
from engine.request.responses import (
    VideoListItem,
    VideoStatus,
    parse_video_id,
    parse_video_list,
    parse_video_status,
)
from engine.request.validate import request_json_schema, request_to_body, validate_request

__all__ = [
    "VideoListItem",
    "VideoRequest",
    "VideoStatus",
    "parse_video_id",
    "parse_video_list",
    "parse_video_status",
    "request_json_schema",
    "request_to_body",
    "validate_request",
]
