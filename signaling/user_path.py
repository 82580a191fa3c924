"""The end user's path: activation link, consent, transaction number, phone socket."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from signaling import call_tan
from signaling.calls import Call, Connection
from signaling.cases import State, tan_valid_until
from signaling.errors import ApiError, bad_request, read_json
from signaling.mail import compose
from signaling.messages import CallTanEntry, Join, Offer, Ping, TorchState, parse_phone
from signaling.ratelimit import wait_text
from signaling.services import Services, client_address, client_tag, services

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_WS_MESSAGE = 128 * 1024


def hours_status(svc: Services) -> dict[str, Any]:
    hours = svc.settings.service_hours
    now = svc.settings.clock()
    status: dict[str, Any] = {"open": hours.is_open(now), "hours": hours.describe()}
    if not status["open"]:
        opens = hours.next_opening(now)
        status["opens_at"] = opens.isoformat()
        status["opens_at_local"] = opens.astimezone(ZoneInfo(hours.tz)).strftime(
            "%d.%m.%Y %H:%M"
        )
    return status


@routes.get("/a/{token}")
async def activation_page(request: web.Request) -> web.StreamResponse:
    # no state change here: mail scanners fetch links; the page's script, run by
    # the user's browser, records the opening through the API below
    svc = services(request)
    return web.FileResponse(svc.web_root / "start" / "index.html")


@routes.get("/api/v1/activation/{token}")
async def activation_status(request: web.Request) -> web.Response:
    svc = services(request)
    case = await svc.store.by_activation(request.match_info["token"])
    if case.state == State.CREATED:
        case = await svc.store.transition(case.id, State.ACTIVATED, "user", "opened")
    return web.json_response(
        {"state": case.state.value, "locale": case.locale, "service": hours_status(svc)}
    )


@routes.post("/api/v1/activation/{token}/consent")
async def consent(request: web.Request) -> web.Response:
    svc = services(request)
    data = await read_json(request)
    missing = [
        k for k in ("terms", "processing", "recording") if data.get(k) is not True
    ]
    if missing:
        raise bad_request(
            f"consent needs {', '.join(missing)} set to true", "consent_missing"
        )
    case = await svc.store.by_activation(request.match_info["token"])
    if case.state not in (State.ACTIVATED, State.CONSENTED, State.CREATED):
        raise ApiError(
            409, "case_not_open", f"this identification is already {case.state.value}"
        )
    if case.state == State.CREATED:
        await svc.store.transition(case.id, State.ACTIVATED, "user", "link opened")
    tan = await svc.store.consent(case.id)
    case = await svc.store.get(case.id)
    until = tan_valid_until(case)
    until_text = (
        until.astimezone(ZoneInfo(svc.settings.service_hours.tz)).strftime(
            "%d.%m.%Y %H:%M"
        )
        if until
        else ""
    )
    phone_url = f"{svc.base_url}/phone/"
    email = await svc.store.email(case.id)
    message = compose(
        svc.settings.mail_from,
        email,
        "tan",
        case.locale,
        tan=tan,
        link=phone_url,
        until=until_text,
    )
    await svc.mailer.send(message, f"case {case.id}", case.id)
    return web.json_response(
        {
            "tan": tan,
            "tan_valid_until": until.isoformat() if until else None,
            "phone_url": phone_url,
            "service": hours_status(svc),
        }
    )


@routes.get("/api/v1/service")
async def service_status(request: web.Request) -> web.Response:
    return web.json_response(hours_status(services(request)))


def _error(exc: ApiError) -> dict[str, Any]:
    return {"type": "error", **exc.body()}


@routes.get("/ws/phone")
async def phone_socket(request: web.Request) -> web.WebSocketResponse:
    svc = services(request)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_WS_MESSAGE)
    await ws.prepare(request)
    svc.sockets.add(ws)
    client = client_address(request)
    conn = Connection(ws, f"phone {client_tag(request)}")
    case_id: str | None = None
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    await conn.send(
                        _error(bad_request("binary frames are not accepted"))
                    )
                elif msg.type == WSMsgType.ERROR:
                    conn.note_refused(msg, MAX_WS_MESSAGE)
                continue
            try:
                message = _parse(svc, conn, case_id, msg.data)
                if isinstance(message, Join):
                    if case_id is not None:
                        raise bad_request(
                            "this connection has already joined", "already_joined"
                        )
                    case_id = await _join(svc, conn, client, message.tan)
                elif isinstance(message, Ping):
                    await conn.send({"type": "pong"})
                elif case_id is None:
                    raise ApiError(
                        401,
                        "not_joined",
                        "send 'join' with the transaction number first",
                    )
                elif isinstance(message, Offer):
                    answer = await svc.hub.phone_offer(conn, case_id, message.sdp)
                    await conn.send({"type": "answer", "sdp": answer})
                elif isinstance(message, TorchState):
                    await _torch_state(svc, case_id, message)
                elif isinstance(message, CallTanEntry):
                    await _call_tan(svc, conn, case_id, message.tan)
            except ApiError as exc:
                if exc.code in (
                    "bad_message",
                    "malformed_json",
                    "unknown_type",
                    "bad_sdp",
                ):
                    logger.warning("%s x %s", conn.label, exc.code)
                await conn.send(_error(exc))
    except Exception:
        logger.exception("%s x phone socket failed", conn.label)
    finally:
        if case_id is not None:
            await svc.hub.phone_left(conn, case_id)
    return ws


def _parse(svc: Services, conn: Connection, case_id: str | None, text: str) -> Any:
    try:
        return parse_phone(text)
    except ApiError as exc:
        # outside a call the code's form does not matter: say there is no call
        if exc.code == "call_tan_malformed":
            _phone_call(svc, conn, case_id)
        raise


def _phone_call(svc: Services, conn: Connection, case_id: str | None) -> Call:
    """The call this phone is in, or the error that says it is in none."""
    if case_id is None:
        raise ApiError(
            401, "not_joined", "send 'join' with the transaction number first"
        )
    call = svc.hub.calls.get(case_id)
    if call is None or call.phone is not conn:
        raise ApiError(409, "no_call", "the code is entered during the call")
    return call


def check_rate_limit(svc: Services, client: str) -> None:
    """Refuse a client that guessed too many transaction numbers lately."""
    wait = svc.tan_limiter.retry_after(client)
    if wait > 0:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many wrong transaction numbers; try again {wait_text(wait)}",
            retry_after=int(wait) + 1,
        )


def check_open(svc: Services) -> None:
    """Refuse outside the service hours, saying when the service opens."""
    status = hours_status(svc)
    if not status["open"]:
        raise ApiError(
            403,
            "service_closed",
            f"the video identification is open {status['hours']}; "
            f"it opens again at {status['opens_at_local']}",
            opens_at=status["opens_at"],
            opens_at_local=status["opens_at_local"],
        )


async def _join(svc: Services, conn: Connection, client: str, tan: str) -> str:
    check_rate_limit(svc, client)
    check_open(svc)
    try:
        case = await svc.store.by_tan(tan)
    except ApiError as exc:
        # a malformed entry is a typing mistake, never a guess of a real number
        if exc.code == "tan_unknown":
            svc.tan_limiter.fail(client)
            svc.metrics.tan_failures.inc()
            logger.warning("%s x wrong transaction number", conn.label)
        raise
    # no reset on success: one valid number must not buy fresh guesses
    conn.label = f"case {case.id} phone"
    status_message = await svc.hub.phone_join(conn, case.id)
    await conn.send({"type": "joined", "case_id": case.id, "locale": case.locale})
    await conn.send(status_message)
    call = svc.hub.calls.get(case.id)
    if call is not None and call.phone is conn and _pending(svc, call.call_tan):
        # back in the same call: the code sent before the reconnect still counts
        await conn.send({"type": "call_tan_requested"})
    return case.id


def _pending(svc: Services, state: call_tan.CallTan | None) -> bool:
    return (
        state is not None
        and not state.confirmed
        and not state.locked
        and not state.expired(svc.settings.clock())
    )


async def _call_tan(svc: Services, conn: Connection, case_id: str, code: str) -> None:
    """Check the code the agent e-mailed during this call; wrong entries count."""
    call = _phone_call(svc, conn, case_id)
    state = call.call_tan
    if state is None:
        raise ApiError(
            409, "call_tan_none", "no code was sent in this call; the agent sends one"
        )
    if state.confirmed:
        await conn.send({"type": "call_tan_result", "ok": True})
        return
    if state.locked:
        raise ApiError(
            409,
            "call_tan_locked",
            f"the code is void after {call_tan.MAX_WRONG} wrong entries; "
            "the agent sends a new one",
        )
    if state.expired(svc.settings.clock()):
        await call.agent.send({"type": "call_tan", "state": "expired"})
        raise ApiError(
            409, "call_tan_expired", "the code has expired; the agent sends a new one"
        )

    if state.matches(svc.vault.derive(call_tan.KEY_PURPOSE), code):
        await svc.store.log(case_id, "phone", "call_tan", "call TAN confirmed")
        logger.info("case %s - call TAN confirmed", case_id)
        await conn.send({"type": "call_tan_result", "ok": True})
        await call.agent.send({"type": "call_tan", "state": "confirmed"})
        return
    await _call_tan_wrong(svc, conn, call, state)


async def _call_tan_wrong(
    svc: Services, conn: Connection, call: Call, state: call_tan.CallTan
) -> None:
    void = ", void" if state.locked else ""
    await svc.store.log(
        call.case_id,
        "phone",
        "call_tan",
        f"call TAN wrong ({state.wrong} of {call_tan.MAX_WRONG}){void}",
    )
    logger.warning("case %s x wrong call TAN (%d)", call.case_id, state.wrong)
    await conn.send(
        {
            "type": "call_tan_result",
            "ok": False,
            "attempts_left": state.attempts_left,
            "locked": state.locked,
        }
    )
    await call.agent.send(
        {
            "type": "call_tan",
            "state": "locked" if state.locked else "wrong",
            "wrong": state.wrong,
            "attempts_left": state.attempts_left,
        }
    )


async def _torch_state(svc: Services, case_id: str, message: TorchState) -> None:
    call = svc.hub.calls.get(case_id)
    if call is None:
        return
    call.torch = {"on": message.on, "available": message.available}
    await svc.store.log(
        case_id,
        "phone",
        "torch_state",
        f"on={message.on} available={message.available} {message.detail}".strip(),
    )
    await call.agent.send(
        {
            "type": "torch_state",
            "on": message.on,
            "available": message.available,
            "detail": message.detail,
        }
    )
