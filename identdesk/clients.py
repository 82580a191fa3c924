"""Python clients for the phone and the agent, used by QA sessions, tests and benches.

They speak the same HTTP, WebSocket and WebRTC protocol as the browser pages.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import AudioStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from signaling.cases import APPROVAL_CHECKS
from signaling.mail import TEXTS

CodeSource = Callable[[], Awaitable[str]]

logger = logging.getLogger(__name__)


class ProtocolError(Exception):
    """The server answered with an error message or not at all."""


class MessageLog:
    """Every message received on a socket, with waiting for a type."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._seen = 0

    async def add(self, message: dict[str, Any]) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def expect(
        self, *types: str, timeout: float = 10.0, since: int | None = None
    ) -> dict[str, Any]:
        """The first message of one of `types` after index `since`; errors raise."""
        start = self._seen if since is None else since
        deadline = time.monotonic() + timeout

        def find() -> dict[str, Any] | None:
            for i in range(start, len(self.messages)):
                msg = self.messages[i]
                if msg["type"] in types or msg["type"] == "error":
                    self._seen = i + 1
                    return msg
            return None

        async with self._changed:
            while (found := find()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProtocolError(
                        f"no {'/'.join(types)} message within {timeout} s"
                    )
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue
        if found["type"] == "error" and "error" not in types:
            err = found["error"]
            raise ProtocolError(f"{err['code']}: {err['message']}")
        return found

    def mark(self) -> int:
        return len(self.messages)


def ws_url(base: str, path: str) -> str:
    return base.replace("https://", "wss://").replace("http://", "ws://") + path


async def _gathered_offer(pc: RTCPeerConnection) -> str:
    # aiortc gathers all candidates inside setLocalDescription (no trickle ICE)
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


class _Socket:
    def __init__(self, session: aiohttp.ClientSession, base: str, ssl_ctx: Any) -> None:
        self.session = session
        self.base = base
        # aiohttp: True = verify with the system store, False = no check, or a context
        self.ssl = True if ssl_ctx is None else ssl_ctx
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.log = MessageLog()
        self._reader: asyncio.Task[None] | None = None

    async def open(self, path: str) -> None:
        self.ws = await self.session.ws_connect(ws_url(self.base, path), ssl=self.ssl)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = msg.json()
                await self.log.add(data)
                await self.on_message(data)

    async def on_message(self, message: dict[str, Any]) -> None:
        pass

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class PhoneClient(_Socket):
    """The phone: joins with a transaction number and sends a camera track."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        ssl_ctx: Any = None,
        tracks: Callable[[], list[MediaStreamTrack]] | None = None,
        has_torch: bool = True,
        code_source: CodeSource | None = None,
    ) -> None:
        super().__init__(session, base, ssl_ctx)
        self.make_tracks = tracks or (lambda: [])
        self.has_torch = has_torch
        # reads the in-call TAN from the user's mail; None: the phone does not answer
        self.code_source = code_source
        self.torch_on = False
        self.torch_log: list[bool] = []
        self.pc: RTCPeerConnection | None = None
        self.call_at: float | None = None
        self.received: dict[str, int] = {"audio": 0, "video": 0}
        self._consumers: list[asyncio.Task[None]] = []

    async def join(self, tan: str) -> dict[str, Any]:
        await self.open("/ws/phone")
        await self.send({"type": "join", "tan": tan})
        return await self.log.expect("joined")

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "call":
            self.call_at = time.monotonic()
            await self._start_call()
        elif kind == "answer" and self.pc is not None:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=message["sdp"], type="answer")
            )
        elif kind == "call_tan_requested" and self.code_source is not None:
            # reading the mail may take a moment; the socket keeps being read
            self._consumers.append(asyncio.ensure_future(self._enter_call_tan()))
        elif kind == "torch":
            self.torch_log.append(message["on"])
            if self.has_torch:
                self.torch_on = message["on"]
            await self.send(
                {
                    "type": "torch_state",
                    "on": self.torch_on,
                    "available": self.has_torch,
                }
            )

    async def _enter_call_tan(self) -> None:
        assert self.code_source is not None
        try:
            code = await self.code_source()
        except ProtocolError as exc:
            logger.warning("phone x no call TAN to enter: %s", exc)
            return
        await self.send({"type": "call_tan", "tan": code})

    async def _start_call(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection()
        self.pc = pc
        for track in self.make_tracks():
            pc.addTrack(track)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._consumers.append(asyncio.ensure_future(self._consume(track)))

        await self.send({"type": "offer", "sdp": await _gathered_offer(pc)})

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.received[track.kind] += 1

    async def wait_received(self, kind: str, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.received[kind] < count:
            if time.monotonic() > deadline:
                raise ProtocolError(
                    f"phone got {self.received[kind]} of {count} {kind} frames"
                )
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        await super().close()


class AgentClient(_Socket):
    """The agent: logs in, takes a case, receives the phone's media, acts."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, ssl_ctx: Any = None
    ) -> None:
        super().__init__(session, base, ssl_ctx)
        self.pc: RTCPeerConnection | None = None
        self.frames = 0
        self.audio_frames = 0
        self.first_frame_at: float | None = None
        self.last_frame: av.VideoFrame | None = None
        self.frame_times: list[float] = []
        self.case: dict[str, Any] | None = None
        self.csrf = ""
        self.call_tan: dict[str, Any] | None = None  # the latest call_tan message
        self._consumers: list[asyncio.Task[None]] = []
        self._new_frame = asyncio.Event()

    async def on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "call_tan":
            self.call_tan = message
        elif message["type"] == "case":
            self.call_tan = None

    async def login(self, name: str, password: str) -> None:
        async with self.session.post(
            f"{self.base}/agent/api/login",
            json={"name": name, "password": password},
            ssl=self.ssl,
        ) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise ProtocolError(f"login failed: {body['error']['message']}")
            self.csrf = body["csrf"]
        await self.open("/ws/agent")
        await self.log.expect("hello")

    async def take_case(self, timeout: float = 30.0) -> dict[str, Any]:
        """Take the next case, asking again until one waits or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            await self.send({"type": "take_next"})
            msg = await self.log.expect("case", "queue_empty")
            if msg["type"] == "case":
                self.case = msg["case"]
                return msg["case"]
            if time.monotonic() > deadline:
                raise ProtocolError(f"no case waiting within {timeout} s")
            await asyncio.sleep(0.2)

    async def connect_media(self, tracks: list[MediaStreamTrack] | None = None) -> None:
        """Offer the agent leg; with `tracks`, the agent's camera and microphone too."""
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection()
        self.pc = pc
        if tracks:
            for track in tracks:
                pc.addTrack(track)
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._consumers.append(asyncio.ensure_future(self._consume(track)))

        mark = self.log.mark()
        await self.send({"type": "offer", "sdp": await _gathered_offer(pc)})
        answer = await self.log.expect("answer", since=mark)
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type="answer")
        )

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "audio":
                self.audio_frames += 1
                continue
            now = time.monotonic()
            if self.first_frame_at is None:
                self.first_frame_at = now
            self.frames += 1
            self.frame_times.append(now)
            self.last_frame = frame  # type: ignore[assignment]
            self._new_frame.set()

    async def wait_frames(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.frames < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(
                    f"only {self.frames} of {count} frames within {timeout} s"
                )
            self._new_frame.clear()
            try:
                await asyncio.wait_for(self._new_frame.wait(), remaining)
            except TimeoutError:
                pass

    async def request(
        self, message: dict[str, Any], reply: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        mark = self.log.mark()
        await self.send(message)
        return await self.log.expect(reply, timeout=timeout, since=mark)

    async def capture(self, kind: str) -> dict[str, Any]:
        return await self.request({"type": "capture", "kind": kind}, "snapshot")

    async def torch(self, on: bool) -> dict[str, Any]:
        return await self.request({"type": "torch", "on": on}, "torch_state")

    async def confirm_call_tan(self, timeout: float = 20.0) -> dict[str, Any]:
        """Send the in-call TAN and wait until the phone has confirmed it."""
        mark = self.log.mark()
        await self.send({"type": "send_call_tan"})
        sent = await self.log.expect("call_tan", since=mark)
        if sent["state"] != "sent":
            raise ProtocolError(f"call TAN not sent: {sent}")
        result = await self.log.expect("call_tan", timeout=timeout)
        if result["state"] != "confirmed":
            raise ProtocolError(f"call TAN {result['state']}, not confirmed")
        return result

    async def decide(
        self,
        decision: str,
        reason: str,
        note: str = "",
        checks: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """Decide; an approval confirms the whole checklist unless `checks` says
        which items the agent confirmed."""
        if checks is None:
            checks = APPROVAL_CHECKS if decision == "approve" else ()
        return await self.request(
            {
                "type": "decide",
                "decision": decision,
                "reason": reason,
                "note": note,
                "checks": list(checks),
            },
            "decided",
            # the server finishes the snapshots' analyses before it decides
            timeout=30.0,
        )

    async def fetch(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(f"{self.base}{path}", ssl=self.ssl) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        await super().close()


async def create_case(
    session: aiohttp.ClientSession,
    base: str,
    api_key: str,
    ssl_ctx: Any = True,
    callback_url: str | None = None,
    email: str = "erika.mustermann@example.org",
) -> dict[str, Any]:
    """Create a specimen case through the partner API."""
    body: dict[str, Any] = {
        "reference": "qa-session",
        "identity": {
            "given_names": "ERIKA",
            "surname": "MUSTERMANN",
            "birth_date": "1983-08-12",
        },
        "email": email,
        "locale": "de",
    }
    if callback_url:
        body["callback_url"] = callback_url
    async with session.post(
        f"{base}/api/v1/cases",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        ssl=ssl_ctx,
    ) as resp:
        data = await resp.json()
        if resp.status != 201:
            raise ProtocolError(f"case creation failed: {data['error']['message']}")
        return data


async def activate_and_consent(
    session: aiohttp.ClientSession, activation_url: str, ssl_ctx: Any = True
) -> dict[str, Any]:
    """Open the activation link and consent as the user; returns the TAN answer."""
    async with session.get(activation_url, ssl=ssl_ctx) as resp:
        if resp.status != 200:
            raise ProtocolError(f"activation page answered {resp.status}")
    token = activation_url.rstrip("/").rsplit("/", 1)[-1]
    base = activation_url.split("/a/", 1)[0]
    async with session.post(
        f"{base}/api/v1/activation/{token}/consent",
        json={"terms": True, "processing": True, "recording": True},
        ssl=ssl_ctx,
    ) as resp:
        data = await resp.json()
        if resp.status != 200:
            raise ProtocolError(f"consent failed: {data['error']['message']}")
        return data


CALL_TAN_SUBJECTS = {subject for subject, _ in TEXTS["call_tan"].values()}
_CODE = re.compile(r"\b(\d{6})\b")


def call_tan_in(msg: Message, to: str | None = None) -> str | None:
    """The in-call TAN a mail carries (to `to`, when given); None for other mail."""
    subject = str(make_header(decode_header(msg["Subject"] or "")))
    if subject not in CALL_TAN_SUBJECTS or (to is not None and msg["To"] != to):
        return None
    part = msg.get_payload(decode=True)
    found = _CODE.search(part.decode() if isinstance(part, bytes) else "")
    return found.group(1) if found else None


async def latest_call_tan(
    mails: Callable[[], Iterable[Message]],
    to: str | None = None,
    skip: set[str] | None = None,
    timeout: float = 15.0,
) -> str:
    """Wait for a call TAN mail and return the newest code not in `skip`."""
    skip = set() if skip is None else skip
    deadline = time.monotonic() + timeout
    while True:
        codes = [c for m in mails() if (c := call_tan_in(m, to)) is not None]
        if codes and codes[-1] not in skip:
            skip.add(codes[-1])
            return codes[-1]
        if time.monotonic() > deadline:
            raise ProtocolError(f"no new call TAN mail within {timeout} s")
        await asyncio.sleep(0.05)


def outbox_mails(outbox: Path) -> Callable[[], list[Message]]:
    """The .eml files of a mail outbox folder, oldest first."""

    def read() -> list[Message]:
        if not outbox.is_dir():
            return []
        files = sorted(outbox.glob("*.eml"), key=lambda f: f.stat().st_mtime_ns)
        return [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.compat32)
            for f in files
        ]

    return read


def mail_code_source(
    mails: Callable[[], Iterable[Message]], to: str | None = None
) -> CodeSource:
    """A phone's code source: each request reads the next new code from `mails`."""
    used: set[str] = set()

    async def read() -> str:
        return await latest_call_tan(mails, to, used)

    return read


def file_tracks(path: str, loop: bool = False) -> Callable[[], list[MediaStreamTrack]]:
    """Tracks of a video file played in real time, as a phone camera would."""

    def make() -> list[MediaStreamTrack]:
        player = MediaPlayer(path, loop=loop)
        # a phone always sends sound: silence stands in for a file without audio
        audio = player.audio or AudioStreamTrack()
        return [t for t in (player.video, audio) if t is not None]

    return make


def client_ssl(ca: str | None, insecure: bool) -> Any:
    if insecure:
        return False
    if ca:
        return ssl.create_default_context(cafile=ca)
    return True
