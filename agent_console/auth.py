"""Agent login: session cookie (encrypted, HttpOnly, SameSite=Strict) and CSRF token."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web
from aiohttp_session import get_session, new_session

from signaling.accounts import Agent
from signaling.errors import ApiError, bad_request, read_json
from signaling.ratelimit import FailureLimiter, wait_text
from signaling.services import client_address, client_tag, services

logger = logging.getLogger(__name__)
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


# Failed logins are counted per (client address, name), so one attacker's guesses
# at one name do not hold back other agents (the account's own lock is in
# signaling/accounts.py). Behind a reverse proxy every client has the proxy's
# address, so the per-address ceiling against spraying many names is generous, and
# an agent who logged in from that address lately is not held back by it.
SPRAY_CEILING = 10  # times the per-name limit
KNOWN_FOR = 12 * 3600.0  # seconds: a shift and then some


def login_wait(
    limiter: FailureLimiter, client: str, pair: tuple[str, str]
) -> tuple[float, str]:
    """Seconds to wait before this login may be tried, and which limit holds."""
    wait = limiter.retry_after(pair)
    if wait > 0:
        return wait, "name"
    if limiter.known(pair):
        return 0.0, ""
    wait = limiter.retry_after(client, limiter.limit * SPRAY_CEILING)
    return wait, "address" if wait > 0 else ""


@routes.post("/agent/api/login")
async def login(request: web.Request) -> web.Response:
    check_origin(request)
    svc = services(request)
    client = client_address(request)
    data = await read_json(request)
    name, password = data.get("name"), data.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise bad_request("login needs 'name' and 'password' strings")

    # the same for known and unknown names: the answer tells no names apart
    limiter = svc.login_limiter
    pair = (client, name[:120])  # names are at most 100 characters
    wait, held_by = login_wait(limiter, client, pair)
    if wait > 0:
        logger.warning(
            "%s x login held back (per %s limit)", client_tag(request), held_by
        )
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; try again {wait_text(wait)}",
            retry_after=int(wait) + 1,
        )
    try:
        agent = await svc.accounts.login(name, password)
    except ApiError:
        limiter.fail(pair)
        limiter.fail(client)
        raise
    limiter.succeed(pair, known_for=KNOWN_FOR)
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
