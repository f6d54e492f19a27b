"""The emulator's answers: a status, a body and headers, and Discord's JSON error shapes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False      # send half the body, then close the connection
    trickle: float = 0.0        # seconds between the body's bytes (a stalling CDN or proxy)
    trickle_headers: bool = False  # with trickle: the status line and headers trickle too
    endless: bool = False       # after the body, random bytes until the client hangs up
    endless_rate: float = 0.0   # with endless: at most this many bytes per second (0: as fast as it goes)


def json_response(status: int, obj: Any, headers: Optional[dict[str, str]] = None) -> Response:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", dict(headers or {}))


def error_response(status: int, message: str, code: int, **extra: Any) -> Response:
    return json_response(status, dict({"message": message, "code": code}, **extra))


def text_response(status: int, body: bytes) -> Response:
    return Response(status, body, "text/plain; charset=utf-8")


class ClientError(Exception):
    """Raised inside a route to answer with an error body."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def form_error(field_name: str, code: str, message: str) -> ClientError:
    """Discord's 400 "Invalid Form Body" (code 50035) naming the bad field."""
    return ClientError(error_response(400, "Invalid Form Body", 50035, errors={
        field_name: {"_errors": [{"code": code, "message": message}]}}))
