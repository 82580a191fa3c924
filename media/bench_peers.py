"""The processes of `identdesk bench media`: server under test, phones, agents.

Each runs its own asyncio loop and answers calls from the bench over a pipe
(`_child_main`). Phones send a pre-encoded test pattern and agents count frames
without decoding, so the clients cost little CPU beside the server.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import multiprocessing.connection
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from media.passthrough import enlarge_receive_buffers

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
    codec.framerate = fractions.Fraction(FPS)
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
    if role == "workers":
        from media.bench_workers import WorkersServer

        roles["workers"] = WorkersServer
    target = roles[role](*args)
    done = asyncio.Event()

    async def run(call_id: int, name: str, call_args: tuple[Any, ...]) -> None:
        try:
            if name == "ready":
                result = await target.ready() if hasattr(target, "ready") else True
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

    def cpu_seconds(self) -> float:
        return _cpu_seconds()

    def rss_bytes(self) -> int:
        return _rss_bytes()

    async def measure_start(self) -> None:
        self._mark = (time.monotonic(), self.cpu_seconds())
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
        cores = (self.cpu_seconds() - cpu) / (time.monotonic() - wall)
        self._lag_task.cancel()
        return {
            "cores": cores,
            "max_loop_lag_ms": self.max_lag * 1000,
            "phone_packets_lost": float(await self._packets_lost()),
            "rss": float(self.rss_bytes()),
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
        sender._send_keyframe = video.request_keyframe  # type: ignore[method-assign]
        vp8 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")
        ]
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(vp8)
        await pc.setLocalDescription(await pc.createOffer())
        # a browser's sockets buffer more than the kernel default; without this a
        # starved client process loses packets the server sent in time
        enlarge_receive_buffers(pc)
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
        # a browser's sockets buffer more than the kernel default; without this a
        # starved client process loses packets the server sent in time
        enlarge_receive_buffers(pc)
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
