"""API paths answer every error, aiohttp's own included, in the one JSON shape."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import Server


async def _call(server: Server, method: str, path: str, **kw: Any) -> Any:
    async with server.http.request(method, f"{server.base}{path}", **kw) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def test_unknown_api_paths_are_json_404(server: Server) -> None:
    for path in ("/api/v1/nothing", "/.well-known/nothing", "/agent/api/nothing"):
        status, body = await _call(server, "GET", path)
        assert status == 404
        assert body == {
            "error": {"code": "not_found", "message": f"no such path: {path}"}
        }


async def test_wrong_method_on_jwks_is_json_405(server: Server) -> None:
    status, body = await _call(server, "POST", "/.well-known/jwks.json")
    assert status == 405
    assert body["error"]["code"] == "method_not_allowed"
    assert body["error"]["message"].startswith(
        "method POST is not allowed on /.well-known/jwks.json; allowed: GET"
    )


async def test_body_over_the_limit_has_one_code_naming_it(server: Server) -> None:
    headers = {
        "Authorization": f"Bearer {server.api_key}",
        "Content-Type": "application/json",
    }
    for size in (600 * 1024, 2 * 1024 * 1024):
        status, body = await _call(
            server,
            "POST",
            "/api/v1/cases",
            data=io.BytesIO(b" " * size),
            headers=headers,
        )
        assert status == 413
        assert body == {
            "error": {
                "code": "body_too_large",
                "message": f"request body of {size} bytes is over the limit of "
                "262144 bytes (256 KiB)",
                "limit_bytes": 262144,
            }
        }


async def test_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 64 * 1024

    status, body = await _call(
        server,
        "POST",
        "/api/v1/cases",
        data=chunks(),
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["message"] == (
        "request body is over the limit of 262144 bytes (256 KiB)"
    )


async def test_pages_and_static_files_answer_no_json(server: Server) -> None:
    for path in ("/static/nothing.js", "/nothing"):
        async with server.http.get(f"{server.base}{path}") as resp:
            assert resp.status == 404
            assert resp.content_type != "application/json"
