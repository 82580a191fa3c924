"""One JSON error shape for every API: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

# paths whose errors, aiohttp's own included, are answered in the JSON shape
JSON_PATHS = ("/api/", "/agent/api/", "/ws/", "/.well-known/")
# every API body is a small JSON object; the largest real one is a few kB
MAX_BODY = 256 * 1024


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
        return error_response(_as_api_error(request, exc))


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(JSON_PATHS)


def _as_api_error(request: web.Request, exc: web.HTTPException) -> ApiError:
    """aiohttp's own errors (no route, wrong method, body too large) in our shape."""
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, "not_found", f"no such path: {request.path[:200]}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return ApiError(
            405,
            "method_not_allowed",
            f"method {exc.method} is not allowed on {request.path[:200]}; "
            f"allowed: {allowed}",
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return body_too_large()
    code = exc.reason.lower().replace(" ", "_")
    return ApiError(exc.status, code, exc.text or exc.reason)


def body_too_large(size: int | None = None) -> ApiError:
    what = f"request body of {size} bytes" if size is not None else "request body"
    return ApiError(
        413,
        "body_too_large",
        f"{what} is over the limit of {MAX_BODY} bytes ({MAX_BODY // 1024} KiB)",
        limit_bytes=MAX_BODY,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that quotes what was wrong."""
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise body_too_large(length)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:  # aiohttp's client_max_size, 1 MiB
        raise body_too_large() from None
    if len(raw) > MAX_BODY:
        raise body_too_large(len(raw))
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
