"""Recorded-media QA sessions: a video file as the phone's camera, a scripted agent."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
from aiohttp import web

from identdesk.app import build_services, create_app
from identdesk.clients import (
    AgentClient,
    PhoneClient,
    ProtocolError,
    activate_and_consent,
    create_case,
    file_tracks,
    mail_code_source,
    outbox_mails,
)
from signaling.cases import DECISIONS, REASON_CODES, SNAPSHOT_KINDS
from signaling.config import ServiceHours, Settings
from signaling.results import SIGNATURE_HEADER, verify_detached

logger = logging.getLogger(__name__)

# The default script follows a typical phone video: front, torch on and off over
# the front, back, face. Times are fractions of the video's length.
DEFAULT_SCRIPT = [
    {"at": 0.15, "action": "capture", "kind": "front"},
    {"at": 0.30, "action": "torch", "on": True},
    {"at": 0.45, "action": "torch", "on": False},
    {"at": 0.65, "action": "capture", "kind": "back"},
    {"at": 0.85, "action": "capture", "kind": "face"},
    {"at": 0.95, "action": "decide", "decision": "approve", "reason": "ok"},
]


def default_script(seconds: float) -> list[dict[str, Any]]:
    length = seconds if seconds > 0 else 10.0
    return [
        {**step, "at": round(float(step["at"]) * length, 2)}  # type: ignore[arg-type]
        for step in DEFAULT_SCRIPT
    ]


class QaError(Exception):
    """Bad input to a QA session (unreadable video, bad script): exit status 2."""


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    seconds: float
    has_audio: bool


def probe_video(path: str) -> VideoInfo:
    """Check that a file is a readable video before it is played as a camera."""
    if not Path(path).is_file():
        raise QaError(f"cannot read {path}: no such file")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise QaError(f"cannot read {path}: it has no video stream")
            seconds = (
                float(container.duration / 1_000_000) if container.duration else 0.0
            )
            frame = next(container.decode(video=0))
            return VideoInfo(
                path, frame.width, frame.height, seconds, bool(container.streams.audio)
            )
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as exc:
        raise QaError(f"cannot read {path}: {exc}") from exc


def load_script(path: str | None, seconds: float = 10.0) -> list[dict[str, Any]]:
    if path is None:
        return default_script(seconds)
    try:
        steps = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise QaError(f"cannot read script {path}: {exc}") from exc
    if not isinstance(steps, list):
        raise QaError(f"script {path} must be a JSON list of steps")
    for i, step in enumerate(steps):
        _check_step(i, step)
    if not any(s["action"] == "decide" for s in steps):
        raise QaError(f"script {path} has no 'decide' step")
    return sorted(steps, key=lambda s: s["at"])


def _check_step(i: int, step: Any) -> None:
    where = f"script step {i}"
    if not isinstance(step, dict) or not isinstance(step.get("at"), int | float):
        raise QaError(f"{where} needs a number 'at' (seconds of the video)")
    action = step.get("action")
    if action == "capture" and step.get("kind") not in SNAPSHOT_KINDS:
        raise QaError(f"{where}: kind must be one of {', '.join(SNAPSHOT_KINDS)}")
    elif action == "torch" and not isinstance(step.get("on"), bool):
        raise QaError(f"{where}: torch needs 'on': true or false")
    elif action == "decide":
        if step.get("decision") not in DECISIONS:
            raise QaError(f"{where}: decision must be one of {', '.join(DECISIONS)}")
        if step.get("reason") not in REASON_CODES[step["decision"]]:
            allowed = ", ".join(REASON_CODES[step["decision"]])
            raise QaError(
                f"{where}: reason for {step['decision']} must be one of {allowed}"
            )
    elif action not in ("capture", "torch", "decide", "instruction", "call_tan"):
        raise QaError(f"{where}: unknown action {action!r}")


@dataclass
class Report:
    case_id: str = ""
    video: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    frames_at_agent: int = 0
    audio_frames_at_agent: int = 0
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    torch: list[dict[str, Any]] = field(default_factory=list)
    call_tan: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    callback: dict[str, Any] = field(default_factory=dict)
    recording: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def text(self) -> str:
        t, v, d, cb = self.timings, self.video, self.decision, self.callback
        rows = [
            ("case", self.case_id),
            (
                "video",
                f"{v.get('width')}x{v.get('height')}, "
                f"{v.get('seconds', 0):.1f} s, audio {v.get('has_audio')}",
            ),
            ("join", f"{t.get('join_s', 0) * 1000:.0f} ms"),
            ("queue", f"{t.get('queue_s', 0) * 1000:.0f} ms"),
            (
                "first frame",
                f"{t.get('first_frame_s', 0) * 1000:.0f} ms after the call",
            ),
            (
                "frames at agent",
                f"{self.frames_at_agent} video, {self.audio_frames_at_agent} audio",
            ),
        ]
        for snap in self.snapshots:
            rows.append(
                (
                    "snapshot",
                    f"{snap['kind']:<6} {snap['width']}x{snap['height']}"
                    f" at {snap['at']:.1f} s ({snap['bytes']} bytes, "
                    f"decoded {snap['decoded']})",
                )
            )
        for ack in self.torch:
            asked = "on" if ack["asked"] else "off"
            state = "on" if ack["on"] else "off"
            rows.append(
                (
                    "torch",
                    f"asked {asked} -> phone reports {state} "
                    f"(torch available {ack['available']})",
                )
            )
        if self.call_tan:
            rows.append(
                (
                    "call TAN",
                    f"{self.call_tan['state']} at {self.call_tan['at']:.1f} s, "
                    f"{self.call_tan['seconds'] * 1000:.0f} ms from sending",
                )
            )
        rows.append(("decision", f"{d.get('decision')} ({d.get('reason')})"))
        if cb:
            rows.append(
                (
                    "callback",
                    f"received {cb.get('received')}, signature valid "
                    f"{cb.get('signature_valid')}, state {cb.get('state')}",
                )
            )
        if self.recording:
            rows.append(
                ("recording", f"{self.recording.get('bytes')} bytes, encrypted")
            )
        return "\n".join(f"{label:<18}{value}" for label, value in rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def local_server(data_dir: Path, **overrides: Any):  # type: ignore[no-untyped-def]
    """An identdesk server in this process on 127.0.0.1, plain HTTP, always open."""
    settings = Settings(
        host="127.0.0.1",
        port=free_port(),
        data_dir=data_dir,
        tls=False,
        service_hours=ServiceHours(always=True),
        allow_insecure_callbacks=True,  # the callback sink is http on loopback
        media_workers=0,  # calls in this process unless the caller asks for workers
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    svc = await build_services(settings)
    app = await create_app(settings, svc)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{settings.port}", svc
    finally:
        await runner.cleanup()


class ServeProcess:
    """`identdesk serve` as a real child process, plain HTTP on loopback, always open.

    Its output is read by a thread into `output`, so a long run never blocks on a
    full pipe; `stop` sends a signal and waits for the process to end.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._running = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "IDENTDESK_SERVICE_HOURS": "always"}
        command = ["serve", "--no-tls", "--host", "127.0.0.1", "--port"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "identdesk.cli", *command, str(self.port)]
            + ["--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._running.wait(timeout):
            self.stop(signal.SIGKILL)
            raise RuntimeError("the server did not start:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "identdesk is running" in line:
                self._running.set()

    def secret(self, pattern: str) -> str:
        """The first group of `pattern` in the output (the printed password, key)."""
        found = re.search(pattern, "".join(self.output))
        if found is None:
            raise RuntimeError(f"no {pattern!r} in:\n" + "".join(self.output))
        return found.group(1)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class CallbackSink:
    """A partner's callback endpoint on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.arrived = asyncio.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/callback"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/callback", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(
            (await request.read(), request.headers.get(SIGNATURE_HEADER, ""))
        )
        self.arrived.set()
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


async def run_session(
    video: str,
    script: list[dict[str, Any]],
    base: str,
    api_key: str,
    agent_name: str,
    agent_password: str,
    ssl_ctx: Any = True,
    callback: CallbackSink | None = None,
    signer_jwks: dict[str, Any] | None = None,
    outbox: Path | None = None,
) -> Report:
    """Walk the whole path once and report what happened.

    The phone reads the in-call TAN from the server's mail `outbox` folder
    (default: the outbox of IDENTDESK_DATA_DIR, as `identdesk serve` uses it)."""
    info = probe_video(video)
    report = Report(video=info.__dict__.copy())
    if outbox is None:
        outbox = Path(os.environ.get("IDENTDESK_DATA_DIR", "data")) / "outbox"
    # an address of this session's own, so its mail is told from other cases'
    address = f"qa-{secrets.token_hex(6)}@example.org"
    codes = mail_code_source(outbox_mails(outbox), address)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as user:
        case = await create_case(
            user,
            base,
            api_key,
            ssl_ctx,
            callback.url if callback else None,
            email=address,
        )
        report.case_id = case["id"]
        consent = await activate_and_consent(user, case["activation_url"], ssl_ctx)

    async with (
        aiohttp.ClientSession() as phone_http,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent_http,
    ):
        phone = PhoneClient(
            phone_http, base, ssl_ctx, tracks=file_tracks(video), code_source=codes
        )
        agent = AgentClient(agent_http, base, ssl_ctx)
        try:
            await agent.login(agent_name, agent_password)
            t0 = time.monotonic()
            await phone.join(consent["tan"])
            report.timings["join_s"] = time.monotonic() - t0
            await phone.log.expect("queued")
            t_queued = time.monotonic()
            taken = await agent.take_case()
            if taken["id"] != report.case_id:
                raise ProtocolError(f"agent was given case {taken['id']}, not ours")
            await agent.connect_media()
            await agent.wait_frames(1, timeout=20)
            assert phone.call_at is not None and agent.first_frame_at is not None
            report.timings["queue_s"] = phone.call_at - t_queued
            report.timings["first_frame_s"] = agent.first_frame_at - phone.call_at
            await _play_script(script, agent, report)
            report.frames_at_agent = agent.frames
            report.audio_frames_at_agent = agent.audio_frames
        finally:
            await phone.close()
            await agent.close()
    if callback is not None and signer_jwks is not None:
        await _check_callback(callback, signer_jwks, report)
    return report


async def _play_script(
    script: list[dict[str, Any]], agent: AgentClient, report: Report
) -> None:
    assert agent.first_frame_at is not None
    start = agent.first_frame_at
    for step in script:
        delay = start + float(step["at"]) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        at = time.monotonic() - start
        action = step["action"]
        if action == "capture":
            snap = await agent.capture(step["kind"])
            status, data = await agent.fetch(snap["url"])
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            report.snapshots.append(
                {
                    "kind": snap["kind"],
                    "id": snap["id"],
                    "width": snap["width"],
                    "height": snap["height"],
                    "at": at,
                    "bytes": len(data),
                    "decoded": status == 200 and decoded is not None,
                }
            )
        elif action == "torch":
            ack = await agent.torch(step["on"])
            report.torch.append(
                {
                    "asked": step["on"],
                    "on": ack["on"],
                    "available": ack["available"],
                    "at": at,
                }
            )
        elif action == "instruction":
            await agent.send(
                {
                    "type": "instruction",
                    "key": step.get("key", "custom"),
                    "text": step.get("text", ""),
                }
            )
        elif action == "call_tan":
            await _confirm_call_tan(agent, report, at)
        elif action == "decide":
            if step["decision"] == "approve" and not report.call_tan:
                # an approval needs the in-call TAN: a script without the step
                # gets it just before the decision
                await _confirm_call_tan(agent, report, at)
            done = await agent.decide(
                step["decision"], step["reason"], step.get("note", "")
            )
            report.decision = {
                "decision": done["decision"],
                "reason": done["reason"],
                "at": at,
            }
            return


async def _confirm_call_tan(agent: AgentClient, report: Report, at: float) -> None:
    t0 = time.monotonic()
    done = await agent.confirm_call_tan()
    report.call_tan = {
        "state": done["state"],
        "at": at,
        "seconds": round(time.monotonic() - t0, 3),
    }


async def _check_callback(
    callback: CallbackSink, jwks: dict[str, Any], report: Report
) -> None:
    import jwt

    try:
        await asyncio.wait_for(callback.arrived.wait(), timeout=15)
    except TimeoutError:
        report.callback = {"received": False}
        return
    body, signature = callback.received[-1]
    key = jwt.PyJWK(jwks["keys"][0]).key
    try:
        verify_detached(signature, body, key)
        valid = True
    except (jwt.PyJWTError, ValueError):
        valid = False
    result = json.loads(body)
    report.callback = {
        "received": True,
        "signature_valid": valid,
        "state": result.get("state"),
        "decision": result.get("decision"),
    }


async def run_local(
    video: str,
    script: list[dict[str, Any]],
    data_dir: Path | None,
    media_workers: int = 0,
) -> Report:
    """A QA session against a server started in this process, its calls carried
    by `media_workers` worker processes (0: in the server process)."""
    probe_video(video)
    with tempfile.TemporaryDirectory(prefix="identdesk-qa-") as tmp:
        folder = data_dir or Path(tmp)
        async with local_server(folder, media_workers=media_workers) as (base, svc):
            _, api_key = await svc.accounts.add_partner(f"qa-{secrets.token_hex(4)}")
            name = f"qa-agent-{secrets.token_hex(4)}"
            _, password = await svc.accounts.add_agent(name)
            sink = CallbackSink()
            await sink.start()
            try:
                report = await run_session(
                    video,
                    script,
                    base,
                    api_key,
                    name,
                    password,
                    callback=sink,
                    signer_jwks=svc.signer.jwks(),
                    outbox=svc.mailer.outbox,
                )
            finally:
                await sink.stop()
            rows = [
                r
                for r in await svc.evidence.list(report.case_id)
                if r.kind == "recording"
            ]
            if rows:
                report.recording = {"id": rows[-1].id, "bytes": rows[-1].bytes}
            return report
