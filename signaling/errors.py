"""One JSON error shape for every API: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client caused or must know about; carries its HTTP status."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.extra)
        return {"error": error}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def error_response(error: ApiError) -> web.Response:
    headers = {}
    if "retry_after" in error.extra:
        headers["Retry-After"] = str(int(error.extra["retry_after"]))
    return web.json_response(error.body(), status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn ApiError and aiohttp's HTTP errors on API paths into the JSON shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            logger.error("%s %s x %s", request.method, request.path, exc.code)
        return error_response(exc)
    except web.HTTPException as exc:
        if not _wants_json(request) or exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return web.json_response(
            {"error": {"code": code, "message": exc.text or exc.reason}},
            status=exc.status,
        )


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/agent/api/", "/ws/"))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that quotes what was wrong."""
    raw = await request.read()
    if len(raw) > 256 * 1024:
        raise ApiError(
            413, "too_large", f"request body of {len(raw)} bytes is too large"
        )
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}", "malformed_json") from exc
    except RecursionError:
        raise bad_request("body is nested too deeply", "malformed_json") from None
    if not isinstance(data, dict):
        raise bad_request(
            f"body must be a JSON object, got {type(data).__name__}", "malformed_json"
        )
    return data
