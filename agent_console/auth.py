"""Agent login: session cookie (encrypted, HttpOnly, SameSite=Strict) and CSRF token."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session

from signaling.accounts import Agent
from signaling.errors import ApiError, bad_request, read_json
from signaling.ratelimit import wait_text
from signaling.services import client_address, services

routes = web.RouteTableDef()
CSRF_HEADER = "X-CSRF-Token"


def check_origin(request: web.Request) -> None:
    """Refuse cross-site requests that carry our cookie (CSRF, cross-site WebSocket)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser, or a same-origin GET
    host = origin.split("://", 1)[-1]
    if host != request.host:
        raise ApiError(
            403, "bad_origin", f"requests from origin {origin[:80]!r} are not allowed"
        )


async def current_agent(request: web.Request, csrf: bool = True) -> Agent:
    session = await get_session(request)
    agent_id = session.get("agent_id")
    if agent_id is None:
        raise ApiError(401, "not_logged_in", "log in first")
    if csrf and request.method not in ("GET", "HEAD"):
        if request.headers.get(CSRF_HEADER) != session.get("csrf"):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    agent = await services(request).accounts.get_agent(agent_id)
    if agent is None or session.get("epoch") != agent.session_epoch:
        session.invalidate()
        raise ApiError(401, "not_logged_in", "log in first")
    return agent


def _agent_json(agent: Agent, csrf: str) -> dict[str, Any]:
    return {
        "agent": {"id": agent.id, "name": agent.name, "role": agent.role},
        "csrf": csrf,
    }


@routes.post("/agent/api/login")
async def login(request: web.Request) -> web.Response:
    check_origin(request)
    svc = services(request)
    client = client_address(request)
    wait = svc.login_limiter.retry_after(client)
    if wait > 0:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again {wait_text(wait)}",
            retry_after=int(wait) + 1,
        )
    data = await read_json(request)
    name, password = data.get("name"), data.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise bad_request("login needs 'name' and 'password' strings")
    try:
        agent = await svc.accounts.login(name, password)
    except ApiError:
        svc.login_limiter.fail(client)
        raise
    svc.login_limiter.succeed(client)
    session = await new_session(request)
    session["agent_id"] = agent.id
    session["epoch"] = agent.session_epoch
    session["csrf"] = secrets.token_urlsafe(24)
    return web.json_response(_agent_json(agent, session["csrf"]))


@routes.post("/agent/api/logout")
async def logout(request: web.Request) -> web.Response:
    agent = await current_agent(request)
    await services(request).accounts.end_sessions(agent.id)
    session = await get_session(request)
    session.invalidate()
    return web.json_response({"ok": True})


@routes.get("/agent/api/me")
async def me(request: web.Request) -> web.Response:
    agent = await current_agent(request)
    session = await get_session(request)
    return web.json_response(_agent_json(agent, session["csrf"]))
