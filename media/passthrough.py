"""Encoded media from one peer connection to another, without decoding.

`hook_receiver` takes the complete encoded frames out of an `RTCRtpReceiver` (its
jitter buffer output, before the decoder) and hands them to an `EncodedHub`.
`RelayTrack` is sent on the other leg: its `recv()` returns `av.Packet`s, which
`RTCRtpSender` packetizes with the codec's `pack()` instead of encoding.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import av
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

logger = logging.getLogger(__name__)

# A video relay more than this many frames behind its sender drops them and
# waits for the next keyframe: a late picture is worse than a skipped one.
MAX_VIDEO_BACKLOG = 15
MAX_AUDIO_BACKLOG = 25
# Socket receive buffer for media (bytes). A 720p keyframe is ~100 kB sent in one
# burst; with several calls per process the kernel default (~200 kB) overflows
# whenever the event loop is late, and aiortc's jitter buffer then stalls until
# it overruns (~1.5 s of frozen video). Capped by net.core.rmem_max.
SOCKET_RECEIVE_BUFFER = 4 << 20
# a receiver asks for at most one keyframe per interval (RFC 4585 6.3.1 leaves the
# rate to us; browsers use about 300 ms)
KEYFRAME_REQUEST_INTERVAL = 0.3


@dataclass
class EncodedFrame:
    """One complete encoded frame as it came out of a jitter buffer."""

    codec: RTCRtpCodecParameters
    data: bytes
    timestamp: int  # RTP clock units, starting at 0 for each receiver
    keyframe: bool
    arrival: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        return self.codec.mimeType.split("/")[0]


def is_keyframe(codec: RTCRtpCodecParameters, data: bytes) -> bool:
    """Whether an encoded frame can be decoded without the frames before it."""
    name = codec.name.upper()
    if name == "VP8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame
        return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"
    if name == "H264":
        return any(nal_type in (5, 7) for nal_type in h264_nal_types(data))
    return True


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B byte stream (what aiortc's depayloader makes)."""
    types = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        types.append(data[pos + 3] & 0x1F)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return types


def vp8_picture_size(data: bytes) -> tuple[int, int]:
    """Width and height from a VP8 key frame header (RFC 6386 9.1)."""
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


class EncodedHub:
    """Fans out the encoded frames of one kind from whichever receiver is current.

    A hub outlives the peer connections feeding it, so a phone that reconnects
    keeps its subscribers (relay tracks, recorder, frame tap).
    """

    def __init__(self, kind: str, label: str = "") -> None:
        self.kind = kind
        self.label = label
        self.codec: RTCRtpCodecParameters | None = None
        self.frames = 0
        self._subscribers: list[Callable[[EncodedFrame], None]] = []
        self._receiver: RTCRtpReceiver | None = None
        self._last_keyframe_request = 0.0
        self.keyframe_requests = 0

    def subscribe(self, callback: Callable[[EncodedFrame], None]) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[EncodedFrame], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def set_receiver(self, receiver: RTCRtpReceiver | None) -> None:
        self._receiver = receiver

    def publish(self, frame: EncodedFrame) -> None:
        self.codec = frame.codec
        self.frames += 1
        for callback in list(self._subscribers):
            callback(frame)

    def request_keyframe(self) -> None:
        """Send a PLI to the sender of the current receiver, rate limited."""
        now = time.monotonic()
        receiver = self._receiver
        if receiver is None or now - self._last_keyframe_request < (
            KEYFRAME_REQUEST_INTERVAL
        ):
            return
        self._last_keyframe_request = now
        self.keyframe_requests += 1
        # an RTX SSRC may be among the sources too; a PLI naming it is ignored
        for source in receiver.getSynchronizationSources():
            # TODO(aiortc public API for RTCP feedback): _send_rtcp_pli is private
            # in aiortc 1.16; it only builds and sends the RFC 4585 PLI packet.
            asyncio.ensure_future(receiver._send_rtcp_pli(source.source))


class _JitterBufferOutput(queue.Queue):  # type: ignore[type-arg]
    """Stands in for the receiver's decoder queue and publishes what it is given."""

    def __init__(self, hub: EncodedHub, on_end: Callable[[], None]) -> None:
        super().__init__()
        self._hub = hub
        self._on_end = on_end

    def put(self, item: object, block: bool = True, timeout: float | None = None):  # type: ignore[override]
        if item is None:
            # end of stream: aiortc's idle decoder thread exits on it
            super().put(None)
            self._on_end()
            return
        codec, jitter_frame = cast(tuple[RTCRtpCodecParameters, JitterFrame], item)
        data = jitter_frame.data
        self._hub.publish(
            EncodedFrame(codec, data, jitter_frame.timestamp, is_keyframe(codec, data))
        )


def hook_receiver(
    receiver: RTCRtpReceiver, hub: EncodedHub, on_end: Callable[[], None]
) -> None:
    """Route a receiver's assembled encoded frames to a hub instead of its decoder.

    Must run before `receiver.receive()`, i.e. in the peer connection's "track"
    handler. The receiver's track then never yields frames.
    """
    # TODO(aiortc 1.16 internals): RTCRtpReceiver puts (codec, JitterFrame) into
    # the private __decoder_queue after depayloading and reassembly (jitter buffer,
    # NACK, PLI on loss all stay aiortc's); its decoder thread is started with this
    # queue in receive(). Replace with a public encoded-frame hook when aiortc has
    # one (WebRTC Encoded Transform).
    if getattr(receiver, "_RTCRtpReceiver__started", False):
        raise RuntimeError("hook_receiver() must be called before receive()")
    receiver._RTCRtpReceiver__decoder_queue = _JitterBufferOutput(hub, on_end)  # type: ignore[attr-defined]


def forward_keyframe_requests(sender: RTCRtpSender, hub: EncodedHub) -> None:
    """Make PLI/FIR received by `sender` ask the hub's source for a keyframe."""
    # TODO(aiortc 1.16 internals): RTCRtpSender._handle_rtcp_packet calls
    # self._send_keyframe() on PLI and FIR, which only flags its own encoder; a
    # sender of pre-encoded packets has none, so we take the call over.
    sender._send_keyframe = hub.request_keyframe  # type: ignore[method-assign]


def enlarge_receive_buffers(pc: RTCPeerConnection) -> int:
    """Give the peer connection's UDP sockets SOCKET_RECEIVE_BUFFER; returns count."""
    count = 0
    for transceiver in pc.getTransceivers():
        # TODO(aiortc/aioice socket options): reaches the sockets through
        # RTCIceGatherer._connection (aioice.Connection) and its _protocols.
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        for protocol in getattr(gatherer._connection, "_protocols", []):
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport else None
            if sock is not None:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RECEIVE_BUFFER
                )
                count += 1
    return count


def find_receiver(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    raise LookupError(f"no receiver for track {track.id}")


def prefer_codec(
    pc: RTCPeerConnection, kind: str, codec: RTCRtpCodecParameters
) -> None:
    """Put `codec` first in the answer so the remote sends and receives it."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    first = [
        c
        for c in capabilities
        if c.mimeType.lower() == codec.mimeType.lower()
        and c.parameters == codec.parameters
    ] or [c for c in capabilities if c.mimeType.lower() == codec.mimeType.lower()]
    rest = [c for c in capabilities if c not in first]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == kind:
            transceiver.setCodecPreferences(first[:1] + rest)


def capability_of(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=codec.parameters,
    )


class RelayTrack(MediaStreamTrack):
    """Sends a hub's encoded frames on another peer connection, as `av.Packet`s.

    Video starts at a keyframe (one is requested when the track starts) and
    restarts at one when the relay falls behind. Timestamps stay monotonic when
    the hub's source changes.
    """

    def __init__(
        self,
        hub: EncodedHub,
        sending_codec: Callable[[], RTCRtpCodecParameters | None] = lambda: None,
    ) -> None:
        super().__init__()
        self.kind = hub.kind
        self.hub = hub
        self.sent = 0
        self.dropped = 0
        self.mismatched = 0
        self._sending_codec = sending_codec
        self._queue: deque[EncodedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._need_keyframe = hub.kind == "video"
        self._offset = 0
        self._last_in: EncodedFrame | None = None
        self._last_out = -1
        hub.subscribe(self._on_frame)

    def _on_frame(self, frame: EncodedFrame) -> None:
        codec = self._sending_codec()
        if codec is not None and codec.mimeType.lower() != frame.codec.mimeType.lower():
            # the legs negotiated different codecs: these bytes cannot be sent
            if not self.mismatched:
                logger.warning(
                    "%s x %s not relayed: the other leg negotiated %s",
                    self.hub.label,
                    frame.codec.mimeType,
                    codec.mimeType,
                )
            self.mismatched += 1
            return
        if self._need_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                self.hub.request_keyframe()
                return
            self._need_keyframe = False
        limit = MAX_VIDEO_BACKLOG if self.kind == "video" else MAX_AUDIO_BACKLOG
        if len(self._queue) >= limit:
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video" and not frame.keyframe:
                self._need_keyframe = True
                self.hub.request_keyframe()
                return
        self._queue.append(frame)
        self._wakeup.set()

    def _timestamp(self, frame: EncodedFrame) -> int:
        last = self._last_in
        if last is not None and (
            frame.codec is not last.codec
            or frame.timestamp + self._offset <= self._last_out
        ):
            # a new source (its clock starts again at 0): continue from the
            # previous one after the wall-clock gap
            gap = int((frame.arrival - last.arrival) * frame.codec.clockRate)
            self._offset = self._last_out + max(gap, 1) - frame.timestamp
        self._last_in = frame
        self._last_out = frame.timestamp + self._offset
        return self._last_out

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._queue.popleft()
        packet = av.Packet(frame.data)
        packet.pts = self._timestamp(frame)
        packet.time_base = fractions.Fraction(1, frame.codec.clockRate)
        self.sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self.hub.unsubscribe(self._on_frame)
        self._queue.clear()
        self._wakeup.set()
