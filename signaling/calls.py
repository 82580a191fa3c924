"""The waiting queue and live calls: pairs phones with agents through the gateway."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMessage, web

from media.admission import GatewayFullError, admission
from media.call_media import CallMedia, LocalCallMedia, OfferError
from media.workers import WorkerLostError, WorkerPool, WorkerUnavailableError
from signaling.call_tan import CallTan
from signaling.cases import CaseStore, State
from signaling.errors import ApiError
from signaling.evidence import EvidenceStore

logger = logging.getLogger(__name__)

# average call length used for the waiting-time estimate until we have figures
DEFAULT_CALL_SECONDS = 8 * 60


class Connection:
    """One WebSocket side (phone or agent) that messages can be sent to."""

    def __init__(self, ws: web.WebSocketResponse, label: str) -> None:
        self.ws = ws
        self.label = label

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(message)
        except ConnectionError:
            logger.warning("%s x send failed, connection gone", self.label)

    def note_refused(self, msg: WSMessage, limit: int) -> None:
        """Log a frame the socket refused and closed on; never its content."""
        code = getattr(msg.data, "code", None)
        if code == WSCloseCode.MESSAGE_TOO_BIG:
            logger.warning(
                "%s x message over the limit of %d bytes; socket closed (1009)",
                self.label,
                limit,
            )
        else:
            logger.warning(
                "%s x bad WebSocket frame; socket closed (%s)", self.label, code
            )


@dataclass
class Call:
    case_id: str
    agent_id: int
    agent: Connection
    media: CallMedia
    recording_id: str | None = None
    recording_writer: Any = None
    phone: Connection | None = None
    torch: dict[str, Any] = field(
        default_factory=lambda: {"on": None, "available": None}
    )
    started: float = field(default_factory=time.monotonic)
    # the code the agent sent during this call; a new call starts without one
    call_tan: CallTan | None = None


class CallHub:
    def __init__(
        self,
        store: CaseStore,
        evidence: EvidenceStore,
        settings: Any,
        pool: WorkerPool | None = None,
    ) -> None:
        self.store = store
        self.pool = pool  # None: calls run in this process
        self.evidence = evidence
        self.settings = settings
        self.queue: dict[str, Connection] = {}  # case id -> phone, oldest first
        self.phones: dict[str, Connection] = {}
        self.calls: dict[str, Call] = {}
        self._lock = asyncio.Lock()
        self.call_seconds: list[float] = []

    # the phone's side

    async def phone_join(self, conn: Connection, case_id: str) -> dict[str, Any]:
        """Put the phone in the queue, or back into its running call."""
        async with self._lock:
            old = self.phones.get(case_id)
            if old is not None and old is not conn:
                await old.send({"type": "replaced"})
                await old.ws.close()
            self.phones[case_id] = conn
            case = await self.store.get(case_id)
            if case.state == State.IN_CALL and case_id in self.calls:
                call = self.calls[case_id]
                call.phone = conn
                await call.agent.send({"type": "phone_rejoined"})
                logger.info("case %s - phone rejoined the call", case_id)
                return {"type": "call", "case_id": case_id}
            if case.state == State.CONSENTED:
                await self.store.transition(
                    case_id, State.WAITING, "user", "joined queue"
                )
            elif case.state != State.WAITING:
                self.phones.pop(case_id, None)
                raise ApiError(
                    409, "case_not_open", f"this identification is {case.state.value}"
                )
            self.queue[case_id] = conn
            logger.info("case %s - phone joined the queue", case_id)
        # the joining phone hears its position from the caller, after "joined"
        await self.broadcast_queue(skip=conn)
        return self.queue_status(case_id)

    def queue_status(self, case_id: str) -> dict[str, Any]:
        position = list(self.queue).index(case_id) + 1
        per_call = (
            sum(self.call_seconds[-20:]) / len(self.call_seconds[-20:])
            if self.call_seconds
            else DEFAULT_CALL_SECONDS
        )
        busy_agents = max(1, len(self.calls))
        return {
            "type": "queued",
            "case_id": case_id,
            "position": position,
            "estimated_wait_s": int(per_call * (position - 1) / busy_agents),
        }

    async def broadcast_queue(self, skip: Connection | None = None) -> None:
        for case_id, conn in list(self.queue.items()):
            if conn is not skip:
                await conn.send(self.queue_status(case_id))

    async def phone_left(self, conn: Connection, case_id: str) -> None:
        async with self._lock:
            if self.phones.get(case_id) is not conn:
                return
            del self.phones[case_id]
            if self.queue.pop(case_id, None) is not None:
                await self.store.transition(
                    case_id,
                    State.CONSENTED,
                    "user",
                    "left queue",
                    expect={State.WAITING},
                )
                logger.info("case %s - phone left the queue", case_id)
            call = self.calls.get(case_id)
            if call is not None and call.phone is conn:
                call.phone = None
                await self._close_leg(call, "phone")
                await call.agent.send({"type": "phone_left"})
                logger.info("case %s - phone left the call", case_id)
        await self.broadcast_queue()

    async def phone_offer(self, conn: Connection, case_id: str, sdp: str) -> str:
        call = self.calls.get(case_id)
        if call is None or call.phone is not conn:
            raise ApiError(409, "no_call", "no agent has taken this case yet")
        return await self._answer(call, "phone", sdp)

    # the agent's side

    async def take_next(self, agent_id: int, conn: Connection) -> str | None:
        """Assign the longest-waiting case to this agent; None when nobody waits."""
        async with self._lock:
            if self.queue:
                # refuse before touching the case: it stays first in the queue
                self._check_media_capacity()
            for case_id in list(self.queue):
                try:
                    await self.store.transition(
                        case_id,
                        State.IN_CALL,
                        f"agent:{agent_id}",
                        "taken",
                        expect={State.WAITING},
                        agent_id=agent_id,
                    )
                except ApiError:
                    self.queue.pop(case_id, None)
                    continue
                phone = self.queue.pop(case_id)
                recording_id, writer = await self.evidence.open_stream(
                    case_id, "recording", "video/x-matroska"
                )
                call = Call(
                    case_id=case_id,
                    agent_id=agent_id,
                    agent=conn,
                    media=self._open_media(case_id, writer),
                    recording_id=recording_id,
                    recording_writer=writer,
                    phone=phone,
                )
                self.calls[case_id] = call
                await phone.send({"type": "call", "case_id": case_id})
                logger.info("case %s - agent %s took the case", case_id, agent_id)
                break
            else:
                return None
        await self.broadcast_queue()
        return case_id

    async def agent_offer(self, case_id: str, sdp: str) -> str:
        return await self._answer(self.calls[case_id], "agent", sdp)

    async def end_call(
        self, case_id: str, requeue: bool, phone_notice: str = "agent_left"
    ) -> None:
        """Close both legs and finish the recording; requeue the phone if asked."""
        call = self.calls.pop(case_id, None)
        if call is None:
            return
        self.call_seconds.append(time.monotonic() - call.started)
        await call.media.stop()
        if call.recording_id and call.recording_writer is not None:
            await self.evidence.finish(
                call.recording_id, call.recording_writer.plaintext_bytes
            )
        logger.info("case %s - call ended", case_id)
        if requeue:
            case = await self.store.get(case_id)
            if case.state == State.IN_CALL:
                phone = call.phone
                if phone is not None and not phone.ws.closed:
                    # the agent switched the torch on: switch it off for the wait
                    await phone.send({"type": "torch", "on": False})
                    await self.store.transition(
                        case_id, State.WAITING, f"agent:{call.agent_id}", "agent left"
                    )
                    async with self._lock:
                        if phone_notice == "connection_lost":
                            # not the user's doing: first in line again
                            self.queue = {case_id: phone, **self.queue}
                        else:
                            self.queue[case_id] = phone
                    await phone.send({"type": phone_notice})
                else:
                    await self.store.transition(
                        case_id, State.CONSENTED, f"agent:{call.agent_id}", "agent left"
                    )
            await self.broadcast_queue()

    async def withdraw(self, case_id: str) -> None:
        """Consent withdrawn: end the call or leave the queue, and tell both sides."""
        notice = {"type": "ended", "decision": "withdrawn"}
        async with self._lock:
            phone = self.queue.pop(case_id, None)
        call = self.calls.get(case_id)
        if call is not None:
            phone = call.phone
            await call.agent.send({"type": "case_withdrawn", "case_id": case_id})
            await self.end_call(case_id, requeue=False)
        if phone is not None:
            await phone.send(notice)
        await self.broadcast_queue()

    async def close_all(self) -> None:
        """Server shutdown: end calls (closing recordings) and tell every client."""
        notice = {"type": "service_interrupted"}
        for case_id in list(self.calls):
            call = self.calls.get(case_id)
            if call is None:  # ended meanwhile (its phone or agent went)
                continue
            await call.agent.send(notice)
            if call.phone is not None:
                await call.phone.send(notice)
            await self.end_call(case_id, requeue=False)
        for conn in list(self.phones.values()):
            await conn.send(notice)

    # helpers

    def _check_media_capacity(self) -> None:
        if admission.active >= admission.max_calls:
            raise ApiError(
                503, "gateway_full", str(GatewayFullError(admission.max_calls))
            )
        if self.pool is not None and not any(w.alive for w in self.pool.workers):
            raise ApiError(503, "media_unavailable", str(WorkerUnavailableError()))

    def _open_media(self, case_id: str, writer: Any) -> CallMedia:
        label = f"case {case_id}"

        async def on_state(leg: str, state: str) -> None:
            await self._leg_state(case_id, leg, state)

        if self.pool is None:
            return LocalCallMedia(label, self.settings.stun_urls, writer, on_state)

        async def on_lost() -> None:
            await self._media_lost(case_id)

        return self.pool.open_call(
            label, self.settings.stun_urls, writer, on_state, on_lost
        )

    async def _leg_state(self, case_id: str, leg: str, state: str) -> None:
        call = self.calls.get(case_id)
        if call is None:
            return
        if leg == "phone":
            await call.agent.send({"type": "phone_connection", "state": state})
        elif call.phone is not None:
            await call.phone.send({"type": "agent_connection", "state": state})

    async def _media_lost(self, case_id: str) -> None:
        """The worker carrying the call ended: the phone goes back to the queue."""
        call = self.calls.get(case_id)
        if call is None:
            return
        logger.error("case %s x the call's media worker ended", case_id)
        await call.agent.send({"type": "call_lost", "case_id": case_id})
        await self.end_call(case_id, requeue=True, phone_notice="connection_lost")

    async def _close_leg(self, call: Call, leg: str) -> None:
        try:
            await call.media.close_leg(leg)
        except (WorkerLostError, TimeoutError) as exc:
            logger.warning("case %s x closing the %s leg: %s", call.case_id, leg, exc)

    async def _answer(self, call: Call, leg: str, sdp: str) -> str:
        try:
            return await call.media.answer(leg, sdp)
        except OfferError as exc:
            raise ApiError(400, "bad_sdp", str(exc)) from exc
        except (WorkerLostError, TimeoutError) as exc:
            raise ApiError(
                503, "media_unavailable", "the call's media service ended; reconnect"
            ) from exc
