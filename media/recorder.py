"""Record a call's audio and video tracks into Matroska, written to any binary sink.

The sink is a non-seekable writable object (`write`, `flush`, `close`), so the
caller decides where the bytes go; identdesk passes an encrypting stream so no
plaintext recording ever reaches the disk.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

# Frames waiting for the encoder; beyond this the oldest video frame is dropped so a
# slow encoder costs frames, never unbounded memory.
MAX_PENDING = 90


class _SinkAdapter:
    """Presents a write-only sink to libav as a non-seekable file."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._sink.write(bytes(data))
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        self._sink.flush()


class Recorder:
    """Encodes tracks into one Matroska stream: VP8 video, Opus audio."""

    def __init__(self, sink: BinaryIO, label: str = "") -> None:
        self._label = label
        self._adapter = _SinkAdapter(sink)
        self._sink = sink
        self._container = av.open(self._adapter, mode="w", format="matroska")
        self._streams: dict[MediaStreamTrack, av.stream.Stream] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="recorder")
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._closed = False
        self._clock: dict[av.stream.Stream, tuple[int, int]] = {}
        self.frames = {"audio": 0, "video": 0}
        self.dropped = 0

    @property
    def bytes_written(self) -> int:
        return self._adapter.bytes_written

    def add_track(self, track: MediaStreamTrack, width: int = 0, height: int = 0) -> None:
        if track.kind == "audio":
            stream = self._container.add_stream("libopus", rate=48000)
            stream.layout = "stereo"
        else:
            stream = self._container.add_stream("libvpx", rate=30)
            stream.pix_fmt = "yuv420p"
            stream.width = width or 1280
            stream.height = height or 720
            # realtime speed keeps the recorder near 0.1 core at 720p (libvpx cpu-used)
            stream.options = {"deadline": "realtime", "cpu-used": "8", "b": "2M"}
            stream.time_base = fractions.Fraction(1, 90000)
        self._streams[track] = stream

    async def start(self) -> None:
        for track, stream in self._streams.items():
            self._tasks.append(asyncio.ensure_future(self._run(track, stream)))

    async def _run(self, track: MediaStreamTrack, stream: av.stream.Stream) -> None:
        loop = asyncio.get_running_loop()
        pending: asyncio.Queue[av.frame.Frame] = asyncio.Queue()
        writer = asyncio.ensure_future(self._drain(stream, pending))
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    break
                if pending.qsize() >= MAX_PENDING and track.kind == "video":
                    pending.get_nowait()
                    self.dropped += 1
                pending.put_nowait(frame)
        finally:
            await pending.put(None)  # type: ignore[arg-type]
            await writer
            del loop

    async def _drain(
        self, stream: av.stream.Stream, pending: asyncio.Queue[av.frame.Frame]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await pending.get()
            if frame is None:
                return
            try:
                await loop.run_in_executor(self._executor, self._encode, stream, frame)
            except Exception:
                logger.exception("recorder %s x encoding failed", self._label)
                return

    def _encode(self, stream: av.stream.Stream, frame: av.frame.Frame | None) -> None:
        with self._lock:
            if self._closed:
                return
            if frame is not None and stream.type == "video":
                if frame.width != stream.width or frame.height != stream.height:
                    frame = frame.reformat(width=stream.width, height=stream.height)
            if frame is not None:
                self._retime(stream, frame)
                self.frames[stream.type] += 1
            for packet in stream.encode(frame):
                self._container.mux(packet)

    def _retime(self, stream: av.stream.Stream, frame: av.frame.Frame) -> None:
        # RTP timestamps start at a random offset (RFC 3550 5.1) and restart when the
        # phone reconnects: rebase to zero and keep them strictly increasing.
        pts = frame.pts or 0
        base, last = self._clock.get(stream, (pts, -1))
        if pts - base <= last:
            base = pts - last - 1
        frame.pts = pts - base
        self._clock[stream] = (base, frame.pts)

    async def stop(self) -> None:
        """Stop reading the tracks, flush the encoders and close the sink."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            for stream in self._streams.values():
                try:
                    for packet in stream.encode(None):
                        self._container.mux(packet)
                except Exception:
                    logger.exception("recorder %s x flushing failed", self._label)
            self._container.close()
            self._closed = True
        self._sink.close()
