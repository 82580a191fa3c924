"""Decoded frames of the phone's video, for snapshots and the frame tools.

The gateway relays and records encoded video; only this tap decodes, and only
while someone wants frames. Between uses it keeps the encoded frames since the
last keyframe, so a new request decodes from there (or asks the phone for a
keyframe when that run is too long) instead of decoding the whole call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import av
import numpy as np

from media.passthrough import EncodedFrame, EncodedHub

logger = logging.getLogger(__name__)

# how long frames keep being decoded after the last request (seconds)
WANT_SECONDS = 5.0
# decoding runs for the first seconds of video so `first_frame` reflects the phone
START_SECONDS = 2.0
# encoded frames kept since the last keyframe; beyond this the run is dropped and a
# keyframe is requested on demand (150 frames = 5 s at 30 fps, ~2 MB at 720p)
MAX_GOP_FRAMES = 150
MAX_GOP_BYTES = 8 << 20
# frames waiting for the decoder; beyond this the decoder is behind real time, so
# the backlog is dropped and decoding restarts at the next keyframe
MAX_DECODE_BACKLOG = 45

_executor = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 2, thread_name_prefix="frametap"
)

DECODERS = {"VP8": "vp8", "H264": "h264"}


# PyAV converts a frame with a converter it keeps on the frame; two threads using
# it at once were seen to hang both for good. The tap's latest frame is shared by
# the live hints, snapshots and the torch challenge, so conversions take turns.
_convert_lock = threading.Lock()


def frame_to_bgr(
    frame: av.VideoFrame, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """The frame's pixels as BGR, optionally scaled; safe from any thread."""
    with _convert_lock:
        if width is None or height is None:
            return frame.to_ndarray(format="bgr24")
        return frame.to_ndarray(width=width, height=height, format="bgr24")


class LatestFrame:
    """The newest decoded frame of a call, and waiting for the next one.

    `FrameTap` decodes here; `media.workers.RemoteTap` mirrors a worker's tap.
    """

    def __init__(self) -> None:
        self.frame: av.VideoFrame | None = None
        self.received_at = 0.0
        self.count = 0  # decoded frames
        self.received = 0  # encoded frames
        self.first_frame = asyncio.Event()
        self._new = asyncio.Condition()

    def want(self, seconds: float = WANT_SECONDS) -> None:
        """Have frames decoded for the next `seconds`."""
        raise NotImplementedError

    def _set_latest(self, frame: av.VideoFrame) -> None:
        self.frame = frame
        self.received_at = time.monotonic()
        self.first_frame.set()
        asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        async with self._new:
            self._new.notify_all()

    async def next_frame(self, timeout: float) -> av.VideoFrame:
        """The next frame to arrive, or the latest one when none comes in time."""
        self.want()
        async with self._new:
            try:
                await asyncio.wait_for(self._new.wait(), timeout)
            except TimeoutError:
                pass
        if self.frame is None:
            raise LookupError("no video frame has been received from the phone yet")
        return self.frame

    def latest_array(self) -> np.ndarray:
        """The latest decoded frame as BGR; asks for fresh frames from now on."""
        self.want()
        if self.frame is None:
            raise LookupError("no video frame has been received from the phone yet")
        return frame_to_bgr(self.frame)


class FrameTap(LatestFrame):
    """Keeps the latest decoded full-resolution frame of the phone's video."""

    def __init__(self) -> None:
        super().__init__()
        self.decode_seconds = 0.0  # wall time the worker spent decoding
        self._hub: EncodedHub | None = None
        self._gop: list[EncodedFrame] = []
        self._gop_bytes = 0
        self._wanted_until = 0.0
        self._synced = False  # every frame since a keyframe went to the decoder
        self._pending: deque[EncodedFrame] = deque()
        self._lock = threading.Lock()
        self._busy = False
        self._decoder: av.VideoCodecContext | None = None
        self._codec_name = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        # called with every newly decoded frame (a worker forwards them)
        self.listeners: list[Callable[[av.VideoFrame], None]] = []

    def attach(self, hub: EncodedHub) -> None:
        """Start receiving a hub's encoded video."""
        self._hub = hub
        self._loop = asyncio.get_running_loop()
        hub.subscribe(self._on_frame)

    def detach(self) -> None:
        if self._hub is not None:
            self._hub.unsubscribe(self._on_frame)
        self._gop.clear()
        self._pending.clear()

    @property
    def wanted(self) -> bool:
        return time.monotonic() < self._wanted_until

    def want(self, seconds: float = WANT_SECONDS) -> None:
        """Decode every frame for the next `seconds`, starting as soon as possible."""
        self._wanted_until = max(self._wanted_until, time.monotonic() + seconds)
        if self._synced:
            return
        if self._gop:
            self._synced = True
            self._queue_decode(list(self._gop))
        elif self._hub is not None:
            self._hub.request_keyframe()

    def _on_frame(self, frame: EncodedFrame) -> None:
        self.received += 1
        if self.received == 1:
            self._wanted_until = max(
                self._wanted_until, time.monotonic() + START_SECONDS
            )
        self._keep(frame)
        if not self.wanted:
            self._synced = False
            return
        if frame.keyframe:
            self._synced = True
        if self._synced:
            self._queue_decode([frame])

    def _keep(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self._gop = []
            self._gop_bytes = 0
        elif not self._gop:
            return
        self._gop.append(frame)
        self._gop_bytes += len(frame.data)
        if len(self._gop) > MAX_GOP_FRAMES or self._gop_bytes > MAX_GOP_BYTES:
            self._gop = []
            self._gop_bytes = 0

    def _queue_decode(self, frames: list[EncodedFrame]) -> None:
        with self._lock:
            self._pending.extend(frames)
            if len(self._pending) > MAX_DECODE_BACKLOG:
                logger.warning(
                    "frame tap - decoder behind, %d frames dropped", len(self._pending)
                )
                self._pending.clear()
                self._synced = False
                if self._hub is not None:
                    self._hub.request_keyframe()
                return
            if self._busy:
                return
            self._busy = True
        future = asyncio.get_running_loop().run_in_executor(_executor, self._decode)
        future.add_done_callback(self._decoded)

    def _decode(self) -> av.VideoFrame | None:
        """Decode everything pending; runs in a worker thread."""
        started = time.perf_counter()
        latest = None
        while True:
            with self._lock:
                if not self._pending:
                    self._busy = False
                    break
                frame = self._pending.popleft()
            latest = self._decode_one(frame) or latest
        self.decode_seconds += time.perf_counter() - started
        return latest

    def _decode_one(self, frame: EncodedFrame) -> av.VideoFrame | None:
        name = DECODERS.get(frame.codec.name.upper())
        if name is None:
            return None
        if self._decoder is None or name != self._codec_name:
            # DECODERS names only video codecs
            self._decoder = cast(
                av.VideoCodecContext, av.CodecContext.create(name, "r")
            )
            self._codec_name = name
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        try:
            decoded = self._decoder.decode(packet)
        except av.FFmpegError as exc:
            logger.debug("frame tap x decoding failed: %s", exc)
            return None
        result = decoded[-1] if decoded else None
        if result is not None:
            self.count += len(decoded)
        return result

    def _decoded(self, future: asyncio.Future[av.VideoFrame | None]) -> None:
        if future.cancelled() or future.exception() is not None or self._loop is None:
            return
        frame = future.result()
        if frame is not None:
            self._loop.call_soon_threadsafe(self._publish, frame)
        # frames may have been queued while the worker was finishing
        with self._lock:
            restart = bool(self._pending) and not self._busy
            if restart:
                self._busy = True
        if restart:
            self._loop.call_soon_threadsafe(self._restart)

    def _restart(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(_executor, self._decode)
        future.add_done_callback(self._decoded)

    def _publish(self, frame: av.VideoFrame) -> None:
        self._set_latest(frame)
        for listener in list(self.listeners):
            listener(frame)
