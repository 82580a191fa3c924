"""The partner API: create cases, read results (API-key authentication)."""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from aiohttp import web

from signaling.cases import State
from signaling.errors import ApiError, bad_request, read_json
from signaling.evidence import delete_evidence
from signaling.mail import compose
from signaling.results import callback_refusal
from signaling.services import services

logger = logging.getLogger(__name__)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
routes = web.RouteTableDef()


async def partner_id(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401, "unauthorized", "send the API key as 'Authorization: Bearer KEY'"
        )
    found = await services(request).accounts.partner_by_key(key.strip())
    if found is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return found


def _text(
    data: dict[str, Any], name: str, limit: int, required: bool = True
) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"field {name!r} must be a non-empty string", "invalid_field")
    if len(value) > limit:
        raise bad_request(
            f"field {name!r} is longer than {limit} characters", "invalid_field"
        )
    return value.strip()


def check_callback_url(url: str, allow_insecure: bool) -> None:
    """Results carry personal decisions: https to a public host only (no SSRF);
    a name's addresses are checked again whenever a result is sent."""
    refusal = callback_refusal(url, public_only=not allow_insecure)
    if refusal is not None:
        raise bad_request(refusal, "invalid_field")


def parse_case_request(
    data: dict[str, Any], allow_insecure: bool = False
) -> dict[str, Any]:
    identity = data.get("identity")
    if not isinstance(identity, dict):
        raise bad_request("field 'identity' must be an object", "invalid_field")
    given = _text(identity, "given_names", 200)
    surname = _text(identity, "surname", 200)
    birth = _text(identity, "birth_date", 10)
    try:
        born = date.fromisoformat(birth or "")
    except ValueError:
        raise bad_request(
            f"identity.birth_date {birth!r} is not a date YYYY-MM-DD", "invalid_field"
        ) from None
    if not date(1900, 1, 1) <= born <= date.today():
        raise bad_request(
            f"identity.birth_date {birth!r} is not a plausible birth date",
            "invalid_field",
        )
    email = _text(data, "email", 320)
    if not EMAIL.match(email or ""):
        raise bad_request("field 'email' is not an e-mail address", "invalid_field")
    callback = _text(data, "callback_url", 2000, required=False)
    if callback is not None:
        check_callback_url(callback, allow_insecure)
    locale = data.get("locale", "de")
    if locale not in ("de", "en"):
        raise bad_request(
            f"locale {str(locale)[:10]!r} must be 'de' or 'en'", "invalid_field"
        )
    return {
        "identity": {"given_names": given, "surname": surname, "birth_date": birth},
        "email": email,
        "callback_url": callback,
        "reference": _text(data, "reference", 200, required=False),
        "locale": locale,
    }


@routes.post("/api/v1/cases")
async def create_case(request: web.Request) -> web.Response:
    partner = await partner_id(request)
    svc = services(request)
    spec = parse_case_request(
        await read_json(request), svc.settings.allow_insecure_callbacks
    )
    case, token = await svc.store.create(partner_id=partner, **spec)
    svc.metrics.cases_created.inc()
    link = f"{svc.base_url}/a/{token}"
    days = str(svc.settings.activation_ttl.days)
    message = compose(
        svc.settings.mail_from,
        spec["email"],
        "activation",
        case.locale,
        link=link,
        days=days,
    )
    await svc.mailer.send(message, f"case {case.id}", case.id)
    body = case.public()
    body["activation_url"] = link
    return web.json_response(body, status=201)


@routes.get("/api/v1/cases/{case_id}")
async def get_case(request: web.Request) -> web.Response:
    partner = await partner_id(request)
    svc = services(request)
    case = await svc.store.get_for_partner(request.match_info["case_id"], partner)
    return web.json_response(await svc.delivery.result(case.id))


WITHDRAWABLE = ("identity", "snapshots", "recording")


@routes.post("/api/v1/cases/{case_id}/withdrawal")
async def withdraw(request: web.Request) -> web.Response:
    """Consent withdrawn, wholly or in part: delete at once, or block (legal hold)."""
    partner = await partner_id(request)
    svc = services(request)
    case = await svc.store.get_for_partner(request.match_info["case_id"], partner)
    data = await read_json(request)
    parts = data.get("parts", list(WITHDRAWABLE))
    if (
        not isinstance(parts, list)
        or not parts
        or any(p not in WITHDRAWABLE for p in parts)
    ):
        raise bad_request(
            f"parts {str(parts)[:80]} must be a non-empty list of "
            f"{', '.join(WITHDRAWABLE)}",
            "invalid_field",
        )
    hold = data.get("legal_hold", False)
    if not isinstance(hold, bool):
        raise bad_request("legal_hold must be true or false", "invalid_field")
    whole = set(parts) == set(WITHDRAWABLE)
    if whole:
        await svc.hub.withdraw(case.id)
    removed = 0
    if not hold:
        # "snapshots" covers the stills and all that was derived from them
        # (rectified images, face crops, analyses, hologram overlays)
        stored = {row.kind for row in await svc.evidence.list(case.id)}
        kinds = (stored - {"recording"} if "snapshots" in parts else set()) | (
            {"recording"} if "recording" in parts else set()
        )
        removed = await delete_evidence(svc.evidence, case.id, kinds)
        if "identity" in parts:
            await svc.store.erase_personal_data(case.id)
            # the outbox's copies of the case's mails hold its address and numbers
            removed += svc.mailer.forget(case.id)
    detail = f"parts={','.join(sorted(parts))} legal_hold={hold} removed={removed}"
    if whole and case.state != State.WITHDRAWN:
        await svc.store.transition(
            case.id, State.WITHDRAWN, f"partner:{partner}", detail
        )
    else:
        await svc.store.log(case.id, f"partner:{partner}", "withdrawal", detail)
    body = await svc.delivery.result(case.id)
    body["withdrawal"] = {"parts": parts, "legal_hold": hold, "deleted_items": removed}
    return web.json_response(body)


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    return web.json_response(services(request).signer.jwks())
