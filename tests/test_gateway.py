"""MediaGateway on real aiortc peers over loopback: relay, record, tap, admission."""

from __future__ import annotations

import asyncio
import fractions
import json
import subprocess
import time
from collections.abc import Awaitable, Callable

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from media import frametap
from media.admission import Admission, GatewayFullError
from media.bench import loopback_only
from media.gateway import MediaGateway
from media.passthrough import EncodedFrame, EncodedHub, find_receiver, hook_receiver

WIDTH, HEIGHT = 320, 240
BITS = 12  # frame index coded as black/white blocks in the top row


def pattern(index: int) -> np.ndarray:
    """A moving BGR picture whose top row codes `index`."""
    x = np.arange(WIDTH, dtype=np.uint16)
    y = np.arange(HEIGHT, dtype=np.uint16)[:, None]
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = (x + index * 3) % 256
    image[..., 1] = (y * 2 + index) % 256
    image[..., 2] = 90
    image[:24] = 0
    for bit in range(BITS):
        if index >> bit & 1:
            image[:24, bit * 24 + 2 : bit * 24 + 22] = 255
    return image


def pattern_index(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[12, bit * 24 + 12].mean() > 128)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


class PatternTrack(VideoStreamTrack):
    """A camera: the pattern at 30 fps, encoded by aiortc (so it honours PLI)."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(pattern(self.index), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        self.index += 1
        return frame


class MemorySink:
    """A non-seekable binary sink, like the encrypting writer the server passes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Agent:
    """An agent peer that keeps the encoded video frames it receives."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.frames: list[EncodedFrame] = []
        self.joined_at = 0.0
        self.hub = EncodedHub("video")
        self.hub.subscribe(self.frames.append)

        @self.pc.on("track")
        def on_track(track):
            hub = self.hub if track.kind == "video" else EncodedHub("audio")
            hook_receiver(find_receiver(self.pc, track), hub, lambda: None)

        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")


@pytest.fixture(autouse=True)
def _loopback() -> None:
    loopback_only()


async def negotiate(
    client: RTCPeerConnection, server: RTCPeerConnection, attach: Callable[..., None]
) -> None:
    """Offer from the client, answer from the server, as the signaling server does."""
    attach(server)
    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(client.localDescription)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)


def phone_peer(codec: str = "video/VP8") -> tuple[RTCPeerConnection, PatternTrack]:
    pc = RTCPeerConnection()
    track = PatternTrack()
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(track)
    wanted = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType in (codec, "video/rtx")
    ]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(wanted)
    return pc, track


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Call:
    """A phone, a gateway with its two server-side peer connections, an agent."""

    def __init__(self, sink: MemorySink | None = None, codec: str = "video/VP8"):
        self.gateway = MediaGateway(f"test-{id(self)}", sink, Admission(10))
        self.phone, self.camera = phone_peer(codec)
        self.server_pcs = [RTCPeerConnection(), RTCPeerConnection()]
        self.agent = Agent()

    async def join_phone(self) -> None:
        await negotiate(self.phone, self.server_pcs[0], self.gateway.attach_phone)

    async def join_agent(self) -> None:
        self.agent.joined_at = time.monotonic()
        await negotiate(self.agent.pc, self.server_pcs[1], self.gateway.attach_agent)

    async def close(self) -> None:
        await self.gateway.stop()
        for pc in (self.phone, self.agent.pc, *self.server_pcs):
            await pc.close()


async def with_call(body: Callable[[Call], Awaitable[None]], **kwargs) -> None:
    call = Call(**kwargs)
    try:
        await body(call)
    finally:
        await call.close()


def ffprobe_packets(path: str) -> list[dict]:
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-show_entries",
            "packet=stream_index,pts_time,flags", "-of", "json", path,
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["packets"]


async def test_gateway_records_call_with_right_duration(tmp_path) -> None:
    sink = MemorySink()

    async def body(call: Call) -> None:
        await call.join_phone()
        await call.join_agent()
        await wait_for(lambda: call.agent.frames, 5, "video at the agent")
        started = time.monotonic()
        await asyncio.sleep(2.0)  # the length of the recording under test
        call.recorded_for = time.monotonic() - started  # type: ignore[attr-defined]

    call = Call(sink=sink)
    try:
        await body(call)
    finally:
        await call.close()
    assert sink.closed
    path = tmp_path / "call.mkv"
    path.write_bytes(sink.data)
    packets = ffprobe_packets(str(path))
    video = [float(p["pts_time"]) for p in packets if p["stream_index"] == 0]
    audio = [float(p["pts_time"]) for p in packets if p["stream_index"] == 1]
    assert video == sorted(video) and audio == sorted(audio)
    # the recording started at the phone's first frame, before the agent joined
    assert call.recorded_for < video[-1] < call.recorded_for + 2.0
    assert abs(audio[-1] - video[-1]) < 0.3
    decode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert decode.returncode == 0 and decode.stderr == ""


async def test_gateway_refuses_call_when_full() -> None:
    admission = Admission(max_calls=1)
    first = MediaGateway("case-a", None, admission)
    with pytest.raises(GatewayFullError) as refused:
        MediaGateway("case-b", None, admission)
    assert str(refused.value) == (
        "the media gateway is at its limit of 1 concurrent calls;"
        " try again in a few minutes"
    )
    await first.stop()
    second = MediaGateway("case-b", None, admission)
    assert admission.active == 1
    await second.stop()


def encoded_clip(frames: int) -> list[bytes]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    clip = []
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern(index), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = index
        clip += [bytes(p) for p in codec.encode(frame)]
    return clip


def vp8_frames(clip: list[bytes]) -> list[EncodedFrame]:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from media.passthrough import is_keyframe

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    return [
        EncodedFrame(codec, data, i * 3000, is_keyframe(codec, data))
        for i, data in enumerate(clip)
    ]


async def test_frame_tap_decodes_only_on_demand(monkeypatch) -> None:
    monkeypatch.setattr(frametap, "START_SECONDS", 0.0)
    frames = vp8_frames(encoded_clip(40))
    hub = EncodedHub("video")
    tap = frametap.FrameTap()
    tap.attach(hub)
    for frame in frames[:20]:
        hub.publish(frame)
    await asyncio.sleep(0.05)
    assert tap.count == 0 and tap.frame is None  # nobody asked: nothing decoded

    waiter = asyncio.ensure_future(tap.next_frame(timeout=5))
    await asyncio.sleep(0)
    # the frames since the keyframe are decoded at once, then every new one
    picture = await waiter
    assert pattern_index(picture.to_ndarray(format="bgr24")) == 19
    decoded = tap.count
    hub.publish(frames[20])
    await wait_for(lambda: tap.count == decoded + 1, 5, "the live frame decoded")
    assert pattern_index(tap.latest_array()) == 20
    tap.detach()


async def test_frame_tap_asks_for_keyframe_when_run_is_too_long(monkeypatch) -> None:
    monkeypatch.setattr(frametap, "START_SECONDS", 0.0)
    monkeypatch.setattr(frametap, "MAX_GOP_FRAMES", 10)
    hub = EncodedHub("video")
    requests = []
    monkeypatch.setattr(hub, "request_keyframe", lambda: requests.append(1))
    tap = frametap.FrameTap()
    tap.attach(hub)
    for frame in vp8_frames(encoded_clip(15)):
        hub.publish(frame)
    tap.want()
    assert requests == [1] and tap.count == 0
    tap.detach()


def test_default_max_calls_follows_cpus_and_one_loop(monkeypatch) -> None:
    from media.admission import default_max_calls

    monkeypatch.delenv("IDENTDESK_MAX_CALLS", raising=False)
    assert default_max_calls(cpu_count=1) == 7
    assert default_max_calls(cpu_count=2) == 8  # one event loop's share
    assert default_max_calls(cpu_count=64) == 8
    monkeypatch.setenv("IDENTDESK_MAX_CALLS", "3")
    assert default_max_calls(cpu_count=2) == 3
