"""What the agent does in a call: take a case, capture, torch, instruct, decide."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiohttp import WSMsgType, web

from agent_console.analysis import CallAnalysis
from agent_console.auth import check_origin, current_agent
from agent_console.frame_tools import encode_png
from media.frametap import frame_to_bgr
from signaling import call_tan
from signaling.accounts import Agent
from signaling.calls import Call, Connection
from signaling.cases import APPROVAL_CHECKS, State
from signaling.errors import ApiError
from signaling.mail import compose
from signaling.messages import (
    AgentMessage,
    Capture,
    Decide,
    Hangup,
    Instruction,
    Offer,
    Ping,
    SendCallTan,
    TakeNext,
    Torch,
    TorchChallenge,
    parse_agent,
)
from signaling.services import Services, services
from signaling.user_path import MAX_WS_MESSAGE

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()

# an approval needs these snapshots (BaFin video-ident circular: front, back, face)
APPROVAL_EVIDENCE = ("front", "back", "face")
# a picture older than this means the phone's video has stopped
STALE_FRAME_SECONDS = 2.0
# a capture waits this long for a frame newer than the key press
FRESH_FRAME_TIMEOUT = 0.5

# Only a valid ID card or passport is accepted (MISSION.md; BaFin circular: check
# of expiry). An approval against the latest reading of the MRZ needs an override
# reason, recorded in the case log, and a note that explains it.
OVERRIDE_REASONS = ("mrz_misread", "validity_extended")
DOCUMENT_REFUSALS = {
    "document_expired": "approve refused: the latest document analysis reads an "
    "expired document; only a valid ID card or passport is accepted. Reject "
    "(document_expired), or approve with an override reason ({reasons}) and a "
    "note if the reading is wrong or the validity was extended",
    "document_not_accepted": "approve refused: the latest document analysis reads "
    "a document type that is not accepted; only ID cards and passports are. "
    "Reject (document_not_accepted), or approve with an override reason "
    "({reasons}) and a note if the reading is wrong",
}


@dataclass(frozen=True)
class DeskDecide(Decide):
    """A decision; an approval may override the document check, with a reason."""

    override: str | None = None


def parse_desk(raw: str | bytes) -> AgentMessage:
    """`parse_agent`, with a decision's `override` reason."""
    message = parse_agent(raw)
    if not isinstance(message, Decide):
        return message
    override = json.loads(raw).get("override")
    if override is None:
        return message
    if override not in OVERRIDE_REASONS:
        raise ApiError(
            400,
            "bad_message",
            f"override {str(override)[:40]!r} must be one of "
            + ", ".join(OVERRIDE_REASONS),
        )
    if message.decision != "approve":
        raise ApiError(400, "bad_message", "only an approval takes an override")
    if not message.note.strip():
        raise ApiError(400, "bad_message", "an override needs a note that explains it")
    return DeskDecide(
        message.decision, message.reason, message.note, message.checks, override
    )


class DeskConnection(Connection):
    """The agent's socket; it also hands the phone's torch acknowledgements,
    which reach the agent through it, to a running torch challenge."""

    def __init__(self, ws: web.WebSocketResponse, label: str) -> None:
        super().__init__(ws, label)
        self.torch_acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=16)

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("type") == "torch_state":
            if self.torch_acks.full():
                self.torch_acks.get_nowait()
            self.torch_acks.put_nowait(message)
        await super().send(message)


class Desk:
    """One agent's connection and the call it holds."""

    def __init__(self, svc: Services, agent: Agent, conn: DeskConnection) -> None:
        self.svc = svc
        self.agent = agent
        self.conn = conn
        self.case_id: str | None = None
        self.actor = f"agent:{agent.id}"
        self.analysis: CallAnalysis | None = None

    def call(self) -> Call:
        if self.case_id is None or self.case_id not in self.svc.hub.calls:
            raise ApiError(409, "no_call", "take a case first")
        return self.svc.hub.calls[self.case_id]

    async def handle(self, message: Any) -> None:
        if isinstance(message, Ping):
            await self.conn.send({"type": "pong"})
        elif isinstance(message, TakeNext):
            await self.take_next()
        elif isinstance(message, Offer):
            call = self.call()
            answer = await self.svc.hub.agent_offer(call.case_id, message.sdp)
            await self.conn.send({"type": "answer", "sdp": answer})
        elif isinstance(message, Capture):
            await self.capture(message.kind)
        elif isinstance(message, Torch):
            await self.torch(message.on)
        elif isinstance(message, TorchChallenge):
            await self.torch_challenge()
        elif isinstance(message, Instruction):
            await self.instruct(message)
        elif isinstance(message, Decide):
            await self.decide(message)
        elif isinstance(message, SendCallTan):
            await self.send_call_tan()
        elif isinstance(message, Hangup):
            await self.hangup()

    async def _release_if_gone(self) -> None:
        # the call can end without the agent: withdrawal, server-side hang-up
        if self.case_id is not None and self.case_id not in self.svc.hub.calls:
            self.case_id = None
            await self._stop_analysis()

    async def take_next(self) -> None:
        await self._release_if_gone()
        if self.case_id is not None:
            raise ApiError(409, "busy", f"finish case {self.case_id} first")
        case_id = await self.svc.hub.take_next(self.agent.id, self.conn)
        if case_id is None:
            await self.conn.send({"type": "queue_empty"})
            return
        self.case_id = case_id
        case = await self.svc.store.get(case_id)
        identity = await self._start_analysis(self.call())
        await self.conn.send(
            {
                "type": "case",
                "case": {
                    "id": case.id,
                    "reference": case.reference,
                    "locale": case.locale,
                    "identity": identity,
                },
            }
        )

    async def _start_analysis(self, call: Call) -> dict[str, Any] | None:
        """Run the document tools on the call; returns the case's identity."""
        identity = await self.svc.store.identity(call.case_id)
        self.analysis = CallAnalysis(
            self.svc, call, self.conn.send, self.conn.torch_acks, self.actor, identity
        )
        self.analysis.start()
        return identity

    async def capture(self, kind: str) -> None:
        call = self.call()
        if call.phone is None:
            raise ApiError(409, "phone_absent", "the phone is not connected")
        tap = call.media.tap
        frame = await tap.next_frame(timeout=FRESH_FRAME_TIMEOUT)
        arrived = tap.received_at
        age = time.monotonic() - arrived
        if age > STALE_FRAME_SECONDS:
            # evidence must show the moment of the capture, not a frozen picture
            raise ApiError(
                409,
                "stale_picture",
                f"the phone's latest picture is {age:.1f} s old; its video has "
                "stopped, so nothing was captured",
            )
        compared = 1
        if kind in ("front", "back") and self.analysis is not None:
            # the sharpest moment of the last second or so, not a blurred one
            try:
                frame, arrived, compared = await self.analysis.best_still(
                    frame, arrived
                )
            except Exception:
                # the capture still takes the fresh frame
                logger.exception("case %s x choosing the still failed", call.case_id)
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(None, frame_to_bgr, frame)
        data = await loop.run_in_executor(None, encode_png, image)
        height, width = image.shape[:2]
        evidence_id = await self.svc.evidence.add(
            call.case_id, kind, "image/png", data, width, height, self.agent.id
        )
        chosen = f", best of {compared} frames" if compared > 1 else ""
        await self.svc.store.log(
            call.case_id, self.actor, "capture", f"{kind} {width}x{height}{chosen}"
        )
        logger.info("case %s - snapshot %s %dx%d", call.case_id, kind, width, height)
        self.svc.metrics.snapshots.labels(kind).inc()
        if self.analysis is not None:
            self.analysis.snapshot(evidence_id, kind, image)
        await self.conn.send(
            {
                "type": "snapshot",
                "id": evidence_id,
                "kind": kind,
                "width": width,
                "height": height,
                "compared": compared,
                "age_s": round(time.monotonic() - arrived, 2),
                "url": f"/agent/api/cases/{call.case_id}/evidence/{evidence_id}",
            }
        )

    async def torch(self, on: bool) -> None:
        call = self.call()
        if call.phone is None:
            raise ApiError(409, "phone_absent", "the phone is not connected")
        if self.analysis is not None and self.analysis.challenge_running:
            raise ApiError(
                409, "challenge_running", "the torch challenge is switching the torch"
            )
        await self.svc.store.log(call.case_id, self.actor, "torch", f"on={on}")
        await call.phone.send({"type": "torch", "on": on})

    async def torch_challenge(self) -> None:
        call = self.call()
        if call.phone is None:
            raise ApiError(409, "phone_absent", "the phone is not connected")
        if self.analysis is None or self.analysis.challenge_running:
            raise ApiError(
                409, "challenge_running", "a torch challenge is already running"
            )
        if call.media.tap.frame is None:
            raise ApiError(
                409, "no_frame", "no video frame has been received from the phone yet"
            )
        pattern = self.analysis.start_challenge()
        steps = 1 + 2 * len(pattern)
        variant = "tilt" if call.torch.get("available") is False else "torch"
        await self.conn.send(
            {
                "type": "hologram_started",
                "variant": variant,
                "steps": steps,
                "seconds": pattern[-1][1],
            }
        )

    async def _stop_analysis(self) -> None:
        analysis, self.analysis = self.analysis, None
        if analysis is not None:
            await analysis.close()

    async def instruct(self, message: Instruction) -> None:
        call = self.call()
        if call.phone is None:
            raise ApiError(409, "phone_absent", "the phone is not connected")
        await self.svc.store.log(call.case_id, self.actor, "instruction", message.key)
        await call.phone.send(
            {"type": "instruction", "key": message.key, "text": message.text}
        )

    async def send_call_tan(self) -> None:
        """E-mail a fresh one-time code; the phone asks the user to enter it."""
        call = self.call()
        phone = call.phone
        if phone is None:
            raise ApiError(
                409,
                "phone_absent",
                "the phone is not connected; the code is sent while it is in the call",
            )
        case = await self.svc.store.get(call.case_id)
        state, code = call_tan.issue(
            self.svc.vault.derive(call_tan.KEY_PURPOSE), self.svc.settings.clock()
        )
        message = compose(
            self.svc.settings.mail_from,
            await self.svc.store.email(call.case_id),
            "call_tan",
            case.locale,
            tan=code,
            minutes=str(int(call_tan.LIFETIME.total_seconds() // 60)),
        )
        try:
            await self.svc.mailer.send(message, f"case {call.case_id}", call.case_id)
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("case %s x call TAN mail failed: %s", call.case_id, exc)
            raise ApiError(
                502, "mail_failed", "the code could not be e-mailed; send it again"
            ) from exc

        # a new code replaces the previous one, wrong entries and all
        call.call_tan = state
        await self.svc.store.log(call.case_id, self.actor, "call_tan", "call TAN sent")
        logger.info("case %s - call TAN sent", call.case_id)
        await phone.send({"type": "call_tan_requested"})
        await self.conn.send(
            {
                "type": "call_tan",
                "state": "sent",
                "attempts_left": state.attempts_left,
                "expires_in_s": int(call_tan.LIFETIME.total_seconds()),
            }
        )

    async def _check_approval(self, call: Call, message: Decide) -> None:
        await self._check_evidence(call.case_id)
        open_checks = [c for c in APPROVAL_CHECKS if c not in message.checks]
        if open_checks:
            raise ApiError(
                409,
                "checklist_incomplete",
                "approve needs every checklist item confirmed; open: "
                + ", ".join(open_checks),
            )
        if call.call_tan is None or not call.call_tan.confirmed:
            raise ApiError(
                409,
                "call_tan_missing",
                "approve needs the one-time code sent during this call confirmed "
                "by the user; send it (send_call_tan) and wait for the phone",
            )

    async def decide(self, message: Decide) -> None:
        call = self.call()
        case_id = call.case_id
        if message.decision == "approve":
            await self._check_approval(call, message)
        # the evidence is complete before the decision: running analyses finish
        await self._stop_analysis()
        if message.decision == "approve":
            try:
                await self._check_document(case_id, message)
            except ApiError:
                await self._start_analysis(call)  # the call goes on
                raise
        await self.svc.store.log(
            case_id, self.actor, "checklist", ",".join(message.checks) or "-"
        )
        note = self.svc.vault.seal(message.note.encode(), case_id + "/note")
        await self.svc.store.transition(
            case_id,
            State.DECIDED,
            self.actor,
            f"{message.decision}: {message.reason}",
            expect={State.IN_CALL},
            decision=message.decision,
            reason_code=message.reason,
            note_enc=note,
        )
        phone = call.phone
        await self.svc.hub.end_call(case_id, requeue=False)
        self.case_id = None
        if phone is not None:
            await phone.send({"type": "ended", "decision": message.decision})
        await self.svc.delivery.enqueue(case_id)
        self.svc.metrics.decisions.labels(message.decision).inc()
        await self.conn.send(
            {
                "type": "decided",
                "case_id": case_id,
                "decision": message.decision,
                "reason": message.reason,
            }
        )

    async def _check_document(self, case_id: str, message: Decide) -> None:
        """Refuse an approval the latest MRZ reading speaks against, unless the
        agent overrides it; the override goes into the case log."""
        verdict = await self._document_verdict(case_id)
        if verdict is None:
            return
        override = getattr(message, "override", None)
        if override is None:
            reasons = ", ".join(OVERRIDE_REASONS)
            raise ApiError(
                409, verdict, DOCUMENT_REFUSALS[verdict].format(reasons=reasons)
            )
        await self.svc.store.log(
            case_id,
            self.actor,
            "override",
            f"approve despite {verdict}: {override} (explained in the sealed note)",
        )
        logger.info("case %s - approval overrides %s: %s", case_id, verdict, override)

    async def _document_verdict(self, case_id: str) -> str | None:
        """What the latest analysis with a valid MRZ (check digits right) says
        against the document: expired, or a type not accepted; None if nothing."""
        rows = [
            r for r in await self.svc.evidence.list(case_id) if r.kind == "analysis"
        ]
        loop = asyncio.get_running_loop()
        for row in reversed(rows):
            data = await loop.run_in_executor(None, self.svc.evidence.read, row)
            mrz = json.loads(data).get("mrz") or {}
            if not (mrz.get("found") and mrz.get("valid")):
                continue  # a hologram result, or no reliable reading
            if mrz.get("expired"):
                return "document_expired"
            return None if mrz.get("accepted") else "document_not_accepted"
        return None

    async def _check_evidence(self, case_id: str) -> None:
        """An approval stands on legible stills of the document and the face."""
        taken = {row.kind for row in await self.svc.evidence.list(case_id)}
        missing = [kind for kind in APPROVAL_EVIDENCE if kind not in taken]
        if missing:
            raise ApiError(
                409,
                "evidence_missing",
                "approve needs snapshots of front, back and face; missing: "
                + ", ".join(missing),
            )

    async def hangup(self) -> None:
        if self.case_id is None:
            return
        case_id, self.case_id = self.case_id, None
        await self._stop_analysis()
        await self.svc.store.log(case_id, self.actor, "hangup")
        await self.svc.hub.end_call(case_id, requeue=True)
        await self.conn.send({"type": "hung_up", "case_id": case_id})


@routes.get("/ws/agent")
async def agent_socket(request: web.Request) -> web.WebSocketResponse:
    check_origin(request)
    agent = await current_agent(request, csrf=False)
    svc = services(request)
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_WS_MESSAGE)
    await ws.prepare(request)
    svc.sockets.add(ws)
    conn = DeskConnection(ws, f"agent {agent.name}")
    desk = Desk(svc, agent, conn)
    await conn.send({"type": "hello", "agent": {"id": agent.id, "name": agent.name}})
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                conn.note_refused(msg, MAX_WS_MESSAGE)
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                await desk.handle(parse_desk(msg.data))
            except ApiError as exc:
                if exc.status < 500:
                    logger.warning("%s x %s", conn.label, exc.code)
                await conn.send({"type": "error", **exc.body()})
            except LookupError as exc:
                await conn.send(
                    {
                        "type": "error",
                        "error": {"code": "no_frame", "message": str(exc)},
                    }
                )
            except Exception:
                # our own failure on one message: the agent's socket stays open
                logger.exception("%s x message failed", conn.label)
                await conn.send(
                    {
                        "type": "error",
                        "error": {"code": "internal", "message": "internal error"},
                    }
                )
    except Exception:
        logger.exception("%s x agent socket failed", conn.label)
    finally:
        await desk.hangup()
    return ws


@routes.get("/agent/api/queue")
async def queue(request: web.Request) -> web.Response:
    await current_agent(request)
    hub = services(request).hub
    return web.json_response(
        {"waiting": [hub.queue_status(case_id) for case_id in hub.queue]}
    )


@routes.get("/agent/api/cases/{case_id}/evidence/{evidence_id}")
async def evidence_item(request: web.Request) -> web.Response:
    agent = await current_agent(request)
    svc = services(request)
    case_id = request.match_info["case_id"]
    row = await svc.evidence.meta(request.match_info["evidence_id"])
    case = await svc.store.get(case_id)
    # only the agent who holds or decided the case, or an admin, sees its evidence
    if row.case_id != case_id or (case.agent_id != agent.id and agent.role != "admin"):
        raise ApiError(404, "evidence_not_found", "no such evidence for you")
    if case.state == State.WITHDRAWN:
        raise ApiError(
            410, "withdrawn", "consent was withdrawn; this evidence is blocked"
        )
    if row.kind == "recording":
        raise ApiError(
            403,
            "recording",
            "recordings are exported with `identdesk recording export`",
        )
    loop = asyncio.get_running_loop()
    data = await loop.run_in_executor(None, svc.evidence.read, row)
    return web.Response(
        body=data,
        content_type=row.media_type,
        headers={"Cache-Control": "private, no-store"},
    )
