"""HTTP routes the browser pages need beyond the protocol: QR code, TAN check, queue."""

from __future__ import annotations

import io
import logging
from datetime import datetime

import segno
from aiohttp import web

from agent_console.auth import current_agent
from signaling.cases import State
from signaling.errors import ApiError, bad_request, read_json
from signaling.services import client_address, client_tag, services
from signaling.user_path import check_open, check_rate_limit

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_QR_PATH = 200


@routes.get("/qr.svg")
async def qr_code(request: web.Request) -> web.Response:
    """A QR code of one of our own pages, for a desktop visitor to open on the phone."""
    path = request.query.get("path", "/phone/")
    # only paths on this server: the endpoint must not make codes for any address
    if not path.startswith("/") or path.startswith("//") or len(path) > MAX_QR_PATH:
        raise bad_request(
            f"path {path[:40]!r} must be a path on this server", "bad_path"
        )
    url = services(request).base_url + path
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", scale=8, border=2, title="QR", svgclass=None, lineclass=None
    )
    return web.Response(
        body=out.getvalue(),
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store"},
    )


@routes.post("/api/v1/tan/check")
async def tan_check(request: web.Request) -> web.Response:
    """Check a transaction number before the phone opens its camera and joins."""
    svc = services(request)
    client = client_address(request)
    check_rate_limit(svc, client)
    data = await read_json(request)
    tan = data.get("tan")
    if not isinstance(tan, str):
        raise bad_request("the check needs a string field 'tan'")
    check_open(svc)
    try:
        case = await svc.store.by_tan(tan[:64])
    except ApiError as exc:
        # a malformed entry is a typing mistake, never a guess of a real number
        if exc.code == "tan_unknown":
            svc.tan_limiter.fail(client)
            svc.metrics.tan_failures.inc()
            logger.warning(
                "phone %s x wrong transaction number (check)", client_tag(request)
            )
        raise
    if case.state not in (State.CONSENTED, State.WAITING, State.IN_CALL):
        raise ApiError(
            409, "case_not_open", f"this identification is {case.state.value}"
        )
    return web.json_response({"ok": True, "locale": case.locale})


def _seconds_since(iso: str, now: datetime) -> int:
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return 0
    return max(0, int((now - then).total_seconds()))


@routes.get("/agent/api/queue/waiting")
async def queue_waiting(request: web.Request) -> web.Response:
    """The queue with how long each case has waited, for the console's queue view."""
    await current_agent(request)
    svc = services(request)
    now = svc.settings.clock()
    waiting = []
    for case_id in list(svc.hub.queue):
        try:
            case = await svc.store.get(case_id)
            status = svc.hub.queue_status(case_id)
        except (ApiError, ValueError):
            continue  # taken or left while we looked
        waiting.append(
            {
                "case_id": case_id,
                "reference": case.reference,
                "position": status["position"],
                "waiting_s": _seconds_since(case.updated_at, now),
            }
        )
    return web.json_response({"waiting": waiting, "calls": len(svc.hub.calls)})
