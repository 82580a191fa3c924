"""Media gateway benchmark: N calls through the gateway, then through a plain relay.

Three processes per run, all on 127.0.0.1: the server under test, the phones
(each sends a pre-encoded moving test pattern, VP8 at 30 fps, and Opus audio)
and the agents (each counts complete video frames as they arrive). Phones and
agents send pre-encoded media and do not decode, so the clients cost little CPU
and the server gets the machine. The baseline server is what aiortc offers out of
the box: `MediaRelay` to the agent (decode, re-encode) and `MediaRecorder` to mp4.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import av
import numpy as np

logger = logging.getLogger(__name__)

RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30
CLIP_FRAMES = 120  # 4 s, looped
KEYFRAME_INTERVAL = 60  # frames; the clip can jump to a keyframe on a PLI
BITRATE = {"360p": 600_000, "720p": 1_500_000, "1080p": 3_000_000}
FROZEN_GAP = 0.5  # seconds between frames at the agent that count as frozen video
SETUP_TIMEOUT = 15.0

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)


def loopback_only() -> None:
    """Make aioice gather host candidates on 127.0.0.1 only (tests and bench)."""
    import aioice.ice

    # TODO(aioice option for candidate interfaces): aioice 0.13 offers no way to
    # pick interfaces, and skips 127.0.0.1 in its own list.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


# --- media the phones send -------------------------------------------------------


def test_pattern(width: int, height: int, index: int) -> np.ndarray:
    """Frame `index` of a moving pattern as planar YUV 4:2:0 rows (h * 3 / 2, w).

    Drifting diagonal stripes, a sweeping bar and a bouncing box: every region
    changes every frame, as in a hand-held phone picture, at a few ms per frame.
    """
    base = _pattern_base(width, height)
    shift = (index * 6) % width
    frame = base[:, shift : shift + width].copy()
    luma = frame[:height]
    bar = (index * 16) % width
    luma[:, bar : bar + width // 40] = 235
    box = height // 5
    bx = int((width - box) * (0.5 + 0.5 * np.sin(index / 20)))
    by = int((height - box) * (0.5 + 0.5 * np.cos(index / 27)))
    luma[by : by + box, bx : bx + box] = 40
    return frame


_bases: dict[tuple[int, int], np.ndarray] = {}


def _pattern_base(width: int, height: int) -> np.ndarray:
    """Two frame widths of stripes, planar YUV 4:2:0, to slide a window over."""
    if (width, height) not in _bases:
        x = np.arange(2 * width)
        y = np.arange(height)[:, None]
        luma = 128 + 90 * np.sin((x + y) / 23.0) * np.cos(y / 41.0)
        chroma_x = np.arange(2 * width // 2)
        chroma_y = np.arange(height // 2)[:, None]
        u = 128 + 60 * np.sin(chroma_x / 37.0 + chroma_y / 53.0)
        v = 128 + 60 * np.cos(chroma_x / 29.0 - chroma_y / 61.0)
        # yuv420p as one array: Y rows, then U and V rows of half width, side by side
        chroma = np.concatenate(
            [u.reshape(height // 4, -1), v.reshape(height // 4, -1)], axis=0
        )
        _bases[width, height] = np.concatenate([luma, chroma]).astype(np.uint8)
    return _bases[width, height]


def encode_clip(resolution: str, frames: int = CLIP_FRAMES) -> list[bytes]:
    """VP8 frames of the test pattern; keyframes every KEYFRAME_INTERVAL frames."""
    width, height = RESOLUTIONS[resolution]
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = FPS
    codec.bit_rate = BITRATE[resolution]
    codec.gop_size = KEYFRAME_INTERVAL
    # libvpx's fastest real-time setting: ~30 ms of CPU per 720p frame here
    codec.options = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0"}
    clip: list[bytes] = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(
            test_pattern(width, height, index), format="yuv420p"
        )
        frame.pts = index
        if index % KEYFRAME_INTERVAL == 0:
            frame.pict_type = av.video.frame.PictureType.I
        clip.extend(bytes(p) for p in codec.encode(frame))
    clip.extend(bytes(p) for p in codec.encode(None))
    return clip


def encode_tone(seconds: float = 1.0) -> list[bytes]:
    """Opus packets (20 ms, 48 kHz stereo) of a quiet tone."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    packets: list[bytes] = []
    samples = np.arange(int(48000 * seconds))
    tone = (np.sin(samples * 2 * np.pi * 440 / 48000) * 2000).astype(np.int16)
    for start in range(0, len(tone), 960):
        chunk = np.repeat(tone[start : start + 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = start
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets


def _clip_track_class() -> type:
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class ClipTrack(MediaStreamTrack):
        """Sends pre-encoded packets in a loop at a fixed rate, as a camera would."""

        def __init__(
            self, kind: str, packets: list[bytes], rate: float, clock: int
        ) -> None:
            super().__init__()
            self.kind = kind
            self._packets = packets
            self._rate = rate
            self._step = int(clock / rate)
            self._time_base = fractions.Fraction(1, clock)
            self._index = 0
            self._sent = 0
            self._start: float | None = None
            self.keyframe_requested = False
            self.sent_at: list[float] = []

        def request_keyframe(self) -> None:
            self.keyframe_requested = True

        async def recv(self) -> av.Packet:  # type: ignore[override]
            if self.readyState != "live":
                raise MediaStreamError
            if self._start is None:
                self._start = time.monotonic()
            delay = self._start + self._sent / self._rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.keyframe_requested:
                # jump to the next keyframe of the clip, as an encoder would make one
                self.keyframe_requested = False
                ahead = -self._index % KEYFRAME_INTERVAL
                self._index += ahead
            packet = av.Packet(self._packets[self._index % len(self._packets)])
            packet.pts = self._sent * self._step
            packet.time_base = self._time_base
            self._index += 1
            self._sent += 1
            self.sent_at.append(time.time())
            return packet

    return ClipTrack


# --- the processes ---------------------------------------------------------------


class _Rpc:
    """Calls into a child process over a pipe, from an asyncio loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn
        self._ids = itertools.count()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        while self._conn.poll():
            kind, call_id, value = self._conn.recv()
            future = self._futures.pop(call_id)
            if kind == "error":
                future.set_exception(RuntimeError(value))
            else:
                future.set_result(value)

    async def call(self, name: str, *args: Any) -> Any:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._futures[call_id] = future
        self._conn.send(("call", call_id, (name, args)))
        return await future

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self._conn.send(("quit", -1, None))


def _child_main(
    role: str, conn: multiprocessing.connection.Connection, *args: Any
) -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.ERROR)
    loopback_only()
    # import before the first call so its set-up time is not measured
    import aiortc.contrib.media  # noqa: F401

    import media.gateway  # noqa: F401

    asyncio.run(_serve(conn, role, args))


async def _serve(
    conn: multiprocessing.connection.Connection, role: str, args: tuple[Any, ...]
) -> None:
    roles: dict[str, Callable[..., Any]] = {
        "server": _Server,
        "baseline": _BaselineServer,
        "phones": _Phones,
        "agents": _Agents,
    }
    target = roles[role](*args)
    done = asyncio.Event()

    async def run(call_id: int, name: str, call_args: tuple[Any, ...]) -> None:
        try:
            if name == "ready":
                result = True
            else:
                result = await getattr(target, name)(*call_args)
            conn.send(("result", call_id, result))
        except Exception as exc:
            logger.exception("bench %s x %s failed", role, name)
            conn.send(("error", call_id, f"{role}.{name}: {exc!r}"))

    def readable() -> None:
        while conn.poll():
            try:
                kind, call_id, payload = conn.recv()
            except EOFError:  # the bench went away
                kind, call_id, payload = "quit", -1, None
            if kind == "quit":
                done.set()
                return
            asyncio.ensure_future(run(call_id, *payload))

    asyncio.get_running_loop().add_reader(conn.fileno(), readable)
    await done.wait()
    await target.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _answer(pc: Any, offer: dict[str, str]) -> dict[str, str]:
    from aiortc import RTCSessionDescription

    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    await pc.setLocalDescription(await pc.createAnswer())
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


class _ServerBase:
    def __init__(self, record_dir: str) -> None:
        self.record_dir = record_dir
        self.pcs: dict[tuple[int, str], Any] = {}
        self._mark: tuple[float, float] | None = None
        self.rss_idle = _rss_bytes()

    async def measure_start(self) -> None:
        self._mark = (time.monotonic(), _cpu_seconds())
        self.max_lag = 0.0
        self._lag_task = asyncio.ensure_future(self._watch_lag())

    async def _watch_lag(self) -> None:
        # how late the event loop runs a 10 ms timer: stalls freeze every call
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.max_lag = max(self.max_lag, time.monotonic() - before - 0.01)

    async def _packets_lost(self) -> int:
        lost = 0
        for (_, leg), pc in self.pcs.items():
            if leg != "phone":
                continue
            for receiver in pc.getReceivers():
                for stats in (await receiver.getStats()).values():
                    lost += getattr(stats, "packetsLost", 0) or 0
        return lost

    async def measure_stop(self) -> dict[str, float]:
        assert self._mark is not None
        wall, cpu = self._mark
        cores = (_cpu_seconds() - cpu) / (time.monotonic() - wall)
        self._lag_task.cancel()
        return {
            "cores": cores,
            "max_loop_lag_ms": self.max_lag * 1000,
            "phone_packets_lost": float(await self._packets_lost()),
            "rss": float(_rss_bytes()),
            "rss_idle": float(self.rss_idle),
        }

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()))


class _Server(_ServerBase):
    """The gateway under test: one MediaGateway per call, recording to a file."""

    def __init__(self, record_dir: str, tap: str = "demand") -> None:
        super().__init__(record_dir)
        from media.admission import Admission

        self.admission = Admission(max_calls=1000)
        self.gateways: dict[int, Any] = {}
        self.tap = tap
        self.wanting: list[asyncio.Task[None]] = []

    async def _want_frames(self, gateway: Any) -> None:
        # a frame tool that looks at every frame all call long
        while True:
            gateway.tap.want(2.0)
            await asyncio.sleep(1.0)

    async def offer(self, call: int, leg: str, offer: dict[str, str]) -> dict[str, str]:
        from aiortc import RTCPeerConnection

        from media.gateway import MediaGateway

        if call not in self.gateways:
            sink = open(os.path.join(self.record_dir, f"call-{call}.mkv"), "wb")
            self.gateways[call] = MediaGateway(f"call-{call}", sink, self.admission)
            if self.tap == "always":
                want = self._want_frames(self.gateways[call])
                self.wanting.append(asyncio.ensure_future(want))
        gateway = self.gateways[call]
        pc = RTCPeerConnection()
        self.pcs[call, leg] = pc
        (gateway.attach_phone if leg == "phone" else gateway.attach_agent)(pc)
        return await _answer(pc, offer)

    async def hangup(self, call: int) -> None:
        gateway = self.gateways.pop(call)
        await gateway.stop()
        for leg in ("phone", "agent"):
            await self.pcs.pop((call, leg)).close()


class _BaselineServer(_ServerBase):
    """aiortc out of the box: MediaRelay to the agent, MediaRecorder to mp4."""

    def __init__(self, record_dir: str) -> None:
        super().__init__(record_dir)
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.phone_tracks: dict[tuple[int, str], Any] = {}
        self.recorders: dict[int, Any] = {}

    async def offer(self, call: int, leg: str, offer: dict[str, str]) -> dict[str, str]:
        from aiortc import RTCPeerConnection
        from aiortc.contrib.media import MediaRecorder

        pc = RTCPeerConnection()
        self.pcs[call, leg] = pc
        if leg == "phone":
            recorder = MediaRecorder(os.path.join(self.record_dir, f"call-{call}.mp4"))
            self.recorders[call] = recorder

            @pc.on("track")
            def on_track(track: Any) -> None:
                self.phone_tracks[call, track.kind] = track
                recorder.addTrack(self.relay.subscribe(track))
                if len([k for k in self.phone_tracks if k[0] == call]) == 2:
                    asyncio.ensure_future(recorder.start())

        else:
            for kind in ("audio", "video"):
                pc.addTrack(self.relay.subscribe(self.phone_tracks[call, kind]))
        return await _answer(pc, offer)

    async def hangup(self, call: int) -> None:
        await self.recorders.pop(call).stop()
        for leg in ("phone", "agent"):
            await self.pcs.pop((call, leg)).close()


class _Phones:
    """The phones: pre-encoded VP8 test pattern and Opus tone."""

    def __init__(self, video: list[bytes], audio: list[bytes]) -> None:
        self.video = video
        self.audio = audio
        self.pcs: dict[int, Any] = {}
        self.cameras: dict[int, Any] = {}
        self._cpu = (0.0, 0.0)

    async def measure_start(self) -> None:
        self._cpu = (time.monotonic(), _cpu_seconds())

    async def sent(self, call: int, start: float, end: float) -> dict[str, float]:
        """Video frames per second the phone sent, and this process's CPU."""
        wall, cpu = self._cpu
        times = self.cameras[call].sent_at
        return {
            "fps": sum(1 for t in times if start <= t <= end) / (end - start),
            "cores": (_cpu_seconds() - cpu) / (time.monotonic() - wall),
        }

    async def offer(self, call: int) -> dict[str, str]:
        from aiortc import RTCPeerConnection, RTCRtpSender

        track_class = _clip_track_class()
        pc = RTCPeerConnection()
        self.pcs[call] = pc
        pc.addTrack(track_class("audio", self.audio, 50, 48000))
        video = self.cameras[call] = track_class("video", self.video, FPS, 90000)
        sender = pc.addTrack(video)
        # TODO(aiortc 1.16 internals): PLI/FIR reach RTCRtpSender._send_keyframe,
        # which only flags aiortc's own encoder; these packets are pre-encoded
        sender._send_keyframe = video.request_keyframe
        vp8 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")
        ]
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(vp8)
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def answer(self, call: int, answer: dict[str, str]) -> None:
        from aiortc import RTCSessionDescription

        await self.pcs[call].setRemoteDescription(RTCSessionDescription(**answer))

    async def hangup(self, call: int) -> None:
        await self.pcs.pop(call).close()

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()))


@dataclass
class _AgentCall:
    frames: list[float] = field(default_factory=list)
    decodable: bool | None = None
    size: tuple[int, int] = (0, 0)


class _Agents:
    """The agents: count complete video frames without decoding them."""

    def __init__(self) -> None:
        self.pcs: dict[int, Any] = {}
        self.calls: dict[int, _AgentCall] = {}

    async def offer(self, call: int) -> dict[str, str]:
        from aiortc import RTCPeerConnection

        from media.passthrough import EncodedHub, find_receiver, hook_receiver

        pc = RTCPeerConnection()
        self.pcs[call] = pc
        state = self.calls[call] = _AgentCall()
        hub = EncodedHub("video", f"agent {call}")

        def on_frame(frame: Any) -> None:
            state.frames.append(time.time())
            if state.decodable is None and frame.keyframe:
                state.decodable = _decodes(frame)
                if frame.codec.name.upper() == "VP8":
                    from media.passthrough import vp8_picture_size

                    state.size = vp8_picture_size(frame.data)

        hub.subscribe(on_frame)

        @pc.on("track")
        def on_track(track: Any) -> None:
            # audio is received but not decoded either
            target = hub if track.kind == "video" else EncodedHub("audio")
            hook_receiver(find_receiver(pc, track), target, lambda: None)

        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def answer(self, call: int, answer: dict[str, str]) -> None:
        from aiortc import RTCSessionDescription

        await self.pcs[call].setRemoteDescription(RTCSessionDescription(**answer))

    async def first_frame(self, call: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        state = self.calls[call]
        while not state.frames and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return state.frames[0] if state.frames else None

    async def report(self, call: int, start: float, end: float) -> dict[str, Any]:
        state = self.calls[call]
        window = [t for t in state.frames if start <= t <= end]
        edges = [start, *window, end]
        gaps = [b - a for a, b in zip(edges, edges[1:], strict=False)]
        lost = 0
        for receiver in self.pcs[call].getReceivers():
            for stats in (await receiver.getStats()).values():
                if getattr(stats, "type", "") == "inbound-rtp":
                    lost += stats.packetsLost or 0
        return {
            "lost": lost,
            "fps": len(window) / (end - start),
            "frozen": sum(1 for gap in gaps if gap > FROZEN_GAP),
            "max_gap_ms": max(gaps) * 1000,
            "decodable": bool(state.decodable),
            "width": state.size[0],
        }

    async def hangup(self, call: int) -> None:
        await self.pcs.pop(call).close()

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()))


def _decodes(frame: Any) -> bool:
    decoder = av.CodecContext.create(
        "vp8" if frame.codec.name == "VP8" else "h264", "r"
    )
    try:
        return bool(decoder.decode(av.Packet(frame.data)))
    except av.FFmpegError:
        return False


# --- the orchestration -------------------------------------------------------------


@dataclass
class CallResult:
    call: int
    cpu_cores: float  # the server process's CPU over the window, divided by calls
    fps: float
    frozen: int
    max_gap_ms: float
    rss_mb: float  # the server process's resident memory growth, divided by calls
    first_frame_s: float | None
    decodable: bool
    lost: int  # RTP packets lost on the way to the agent
    sent_fps: float  # video frames per second the phone sent (the phones may lag)


@dataclass
class RunResult:
    mode: str
    calls: list[CallResult]
    cpu_cores_total: float
    rss_mb_total: float
    rss_mb_idle: float
    max_loop_lag_ms: float
    phone_packets_lost: int
    phones_cores: float  # CPU of the phones' process: they compete for the machine

    def summary(self) -> dict[str, float]:
        first = [c.first_frame_s for c in self.calls if c.first_frame_s is not None]
        return {
            "cpu_cores_per_call": self.cpu_cores_total / max(len(self.calls), 1),
            "rss_mb_per_call": self.calls[0].rss_mb if self.calls else 0.0,
            "min_fps": min((c.fps for c in self.calls), default=0.0),
            "frozen_total": float(sum(c.frozen for c in self.calls)),
            "first_frame_max_s": max(first, default=float("nan")),
            # CPU per frame delivered to the agents, in cores per 30 fps call: a
            # relay that cannot keep up uses little CPU but delivers little
            "cpu_cores_per_30fps": sum(c.cpu_cores for c in self.calls)
            / max(sum(c.fps for c in self.calls) / FPS, 1e-9),
        }


class _Run:
    def __init__(
        self, mode: str, clip: list[bytes], tone: list[bytes], *server_args: Any
    ) -> None:
        self.mode = mode
        self.clip = clip
        self.tone = tone
        self.server_args = server_args

    def _spawn(self, role: str, *args: Any) -> tuple[Any, _Rpc]:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_child_main, args=(role, child, *args), daemon=True
        )
        process.start()
        child.close()
        return process, _Rpc(parent)

    async def run(self, calls: int, seconds: float, progress: TextIO) -> RunResult:
        with tempfile.TemporaryDirectory(prefix="identdesk-bench-") as record_dir:
            spawned = [
                self._spawn(self.mode, record_dir, *self.server_args),
                self._spawn("phones", self.clip, self.tone),
                self._spawn("agents"),
            ]
            server, phones, agents = (rpc for _, rpc in spawned)
            try:
                # the children import aiortc first; that is not call set-up time
                await asyncio.gather(*(rpc.call("ready") for _, rpc in spawned))
                return await self._measure(
                    server, phones, agents, calls, seconds, progress
                )
            finally:
                for _, rpc in spawned:
                    rpc.close()
                for process, _ in spawned:
                    await asyncio.get_running_loop().run_in_executor(
                        None, process.join, 10
                    )
                    if process.is_alive():
                        process.kill()

    async def _measure(
        self,
        server: _Rpc,
        phones: _Rpc,
        agents: _Rpc,
        calls: int,
        seconds: float,
        progress: TextIO,
    ) -> RunResult:
        async def start_call(call: int) -> float | None:
            await asyncio.sleep(call * 0.2)
            joined = time.time()
            offer = await phones.call("offer", call)
            await phones.call(
                "answer", call, await server.call("offer", call, "phone", offer)
            )
            offer = await agents.call("offer", call)
            await agents.call(
                "answer", call, await server.call("offer", call, "agent", offer)
            )
            first = await agents.call("first_frame", call, SETUP_TIMEOUT)
            return None if first is None else first - joined

        name = "gateway" if self.mode == "server" else self.mode
        print(f"{name}: starting {calls} calls", file=progress, flush=True)
        firsts = await asyncio.gather(*(start_call(call) for call in range(calls)))
        print(f"{name}: measuring {seconds:g} s", file=progress, flush=True)
        await server.call("measure_start")
        await phones.call("measure_start")
        start = time.time()
        await asyncio.sleep(seconds)
        end = time.time()
        usage = await server.call("measure_stop")
        reports = [
            await agents.call("report", call, start, end) for call in range(calls)
        ]
        sent = [await phones.call("sent", call, start, end) for call in range(calls)]
        for call in range(calls):
            await phones.call("hangup", call)
            await agents.call("hangup", call)
            await server.call("hangup", call)
        growth = max(usage["rss"] - usage["rss_idle"], 0.0) / calls / 2**20
        results = [
            CallResult(
                call=call,
                cpu_cores=usage["cores"] / calls,
                fps=report["fps"],
                frozen=report["frozen"],
                max_gap_ms=report["max_gap_ms"],
                rss_mb=growth,
                first_frame_s=first,
                decodable=report["decodable"],
                lost=report["lost"],
                sent_fps=sent[call]["fps"],
            )
            for call, (report, first) in enumerate(zip(reports, firsts, strict=True))
        ]
        return RunResult(
            self.mode,
            results,
            usage["cores"],
            usage["rss"] / 2**20,
            usage["rss_idle"] / 2**20,
            usage["max_loop_lag_ms"],
            int(usage["phone_packets_lost"]),
            sent[0]["cores"],
        )


async def run_bench(
    calls: int,
    seconds: float,
    resolution: str = "720p",
    baseline_calls: int | None = None,
    progress: TextIO | None = None,
    tap: str = "demand",
) -> dict[str, Any]:
    """Measure the gateway and the baseline; returns the report as plain data."""
    progress = progress or sys.stderr
    print(f"encoding the {resolution} test pattern", file=progress, flush=True)
    loop = asyncio.get_running_loop()
    clip = await loop.run_in_executor(None, encode_clip, resolution)
    tone = await loop.run_in_executor(None, encode_tone)
    gateway = _Run("server", clip, tone, tap)
    runs = {"gateway": await gateway.run(calls, seconds, progress)}
    if baseline_calls is None:
        baseline_calls = calls
    if baseline_calls > 0:
        runs["baseline"] = await _Run("baseline", clip, tone).run(
            baseline_calls, seconds, progress
        )
    report: dict[str, Any] = {
        "calls": calls,
        "seconds": seconds,
        "resolution": resolution,
        "tap": tap,
        "cpu_count": os.cpu_count(),
    }
    for name, result in runs.items():
        report[name] = {
            "calls": [asdict(c) for c in result.calls],
            "cpu_cores_total": result.cpu_cores_total,
            "rss_mb_total": result.rss_mb_total,
            "rss_mb_idle": result.rss_mb_idle,
            "max_loop_lag_ms": result.max_loop_lag_ms,
            "phone_packets_lost": result.phone_packets_lost,
            "phones_cores": result.phones_cores,
            **result.summary(),
        }
    if "baseline" in report:
        gateway, base = report["gateway"], report["baseline"]
        report["ratio"] = {
            key: base[key] / gateway[key] if gateway[key] else float("inf")
            for key in ("cpu_cores_per_call", "cpu_cores_per_30fps", "rss_mb_per_call")
        }
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a table per run, then the ratios."""
    lines = [
        f"{report['calls']} calls, {report['seconds']:g} s, {report['resolution']},"
        f" frame tap decoding {report['tap']}, {report['cpu_count']} CPUs,"
        f" load average {os.getloadavg()[0]:.1f}"
    ]
    header = (
        f"{'run':9} {'call':>4} {'cores':>6} {'sent':>5} {'fps':>5} {'frozen':>6}"
        f" {'max gap ms':>10} {'MB':>6} {'first s':>7} {'decodes':>7} {'lost':>5}"
    )
    for name in ("gateway", "baseline"):
        if name not in report:
            continue
        run = report[name]
        lines += ["", header]
        for c in run["calls"]:
            first = "-" if c["first_frame_s"] is None else f"{c['first_frame_s']:.2f}"
            lines.append(
                f"{name:9} {c['call']:>4} {c['cpu_cores']:>6.3f} {c['sent_fps']:>5.1f}"
                f" {c['fps']:>5.1f}"
                f" {c['frozen']:>6} {c['max_gap_ms']:>10.0f} {c['rss_mb']:>6.1f}"
                f" {first:>7} {'yes' if c['decodable'] else 'no':>7} {c['lost']:>5}"
            )
        lines.append(
            f"{name}: {run['cpu_cores_total']:.3f} cores in all,"
            f" {run['cpu_cores_per_call']:.3f} per call"
            f" ({run['cpu_cores_per_30fps']:.3f} per call at 30 fps delivered);"
            f" resident"
            f" {run['rss_mb_total']:.0f} MB ({run['rss_mb_idle']:.0f} MB before calls);"
            f" min fps {run['min_fps']:.1f}; frozen {run['frozen_total']:.0f};"
            f" first frame max {run['first_frame_max_s']:.2f} s;"
            f" server loop lag max {run['max_loop_lag_ms']:.0f} ms;"
            f" packets lost from phones {run['phone_packets_lost']};"
            f" phones' process {run['phones_cores']:.2f} cores"
        )
    if "ratio" in report:
        ratio = report["ratio"]
        lines += [
            "",
            f"baseline / gateway: CPU x{ratio['cpu_cores_per_call']:.1f},"
            f" CPU per delivered frame x{ratio['cpu_cores_per_30fps']:.1f},"
            f" memory per call x{ratio['rss_mb_per_call']:.1f}",
        ]
    return "\n".join(lines)
