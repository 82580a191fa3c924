"""Record a call's encoded audio and video into Matroska, written to any binary sink.

Packets are muxed as they arrive (no decoding, no encoding). The sink is a
non-seekable writable object (`write`, `flush`, `close`), so the caller decides
where the bytes go; identdesk passes an encrypting stream so no plaintext
recording ever reaches the disk. Being non-seekable, the file has no duration in
its header and no cues: players read the timestamps of the blocks.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import logging
import queue
import threading
from typing import BinaryIO

import av

from media.passthrough import EncodedFrame, vp8_picture_size

logger = logging.getLogger(__name__)

# Matroska block timestamps are in milliseconds
TIME_BASE = fractions.Fraction(1, 1000)
# packets waiting for the writer thread; a sink this far behind loses video until
# the next keyframe rather than holding the call's memory (about 10 s at 720p)
MAX_PENDING = 600
# audio kept while waiting for the first video keyframe (50 per second)
MAX_EARLY_AUDIO = 250
# libavformat may hold packets to interleave streams; bound the delay so a silent
# track does not hold back the others (microseconds)
MAX_INTERLEAVE_DELTA = "500000"


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


class _Clock:
    """Maps one source's RTP timestamps to recording milliseconds.

    RTP timestamps start at a random offset (RFC 3550 5.1) and restart when the
    phone reconnects. The first frame of a source is placed by its arrival time;
    later frames by their RTP timestamps, which keeps variable frame rates and
    gaps from lost frames exact while ignoring network jitter.
    """

    def __init__(self, started_at: float) -> None:
        self._started_at = started_at
        self._codec: object = None
        self._origin_ms = 0.0
        self._origin_ts = 0
        self.last_ms = -1

    def map(self, frame: EncodedFrame) -> int:
        rate = frame.codec.clockRate
        if frame.codec is not self._codec or frame.timestamp < self._origin_ts:
            self._codec = frame.codec
            self._origin_ts = frame.timestamp
            self._origin_ms = max((frame.arrival - self._started_at) * 1000, 0.0)
        ms = round(self._origin_ms + (frame.timestamp - self._origin_ts) * 1000 / rate)
        if ms <= self.last_ms:
            ms = self.last_ms + 1
        self.last_ms = ms
        return ms


class Recorder:
    """Muxes encoded phone video and audio into one Matroska stream.

    Feed it with `on_video` / `on_audio` (as `EncodedHub` subscribers). The
    container starts at the first video keyframe, whose header gives the picture
    size; audio before it is held (bounded). Writing happens in one thread.
    """

    def __init__(self, sink: BinaryIO, label: str = "") -> None:
        self._label = label
        self._adapter = _SinkAdapter(sink)
        self._sink = sink
        self._container: av.container.OutputContainer | None = None
        self._streams: dict[str, av.stream.Stream] = {}
        self._clocks: dict[str, _Clock] = {}
        self._started_at: float | None = None
        self._early_audio: list[EncodedFrame] = []
        self._video_codec = ""
        self._need_keyframe = True
        self._queue: queue.Queue[tuple[str, EncodedFrame] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._write_loop, name="recorder", daemon=True
        )
        self._closed = False
        self.frames = {"audio": 0, "video": 0, "agent_audio": 0}
        self.dropped = 0
        self.error: Exception | None = None

    @property
    def bytes_written(self) -> int:
        return self._adapter.bytes_written

    @property
    def started(self) -> bool:
        return self._started_at is not None

    def on_video(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if self._need_keyframe:
            if not frame.keyframe:
                self.dropped += self._started_at is not None
                return
            self._need_keyframe = False
        if self._started_at is None:
            early = [a.arrival for a in self._early_audio[:1]]
            self._started_at = min([frame.arrival, *early])
            self._queue.put(("video", frame))
            for audio in self._early_audio:
                self._queue.put(("audio", audio))
            self._early_audio.clear()
            self._thread.start()
            return
        if self._queue.qsize() >= MAX_PENDING:
            # the sink is slow: skip video up to the next keyframe
            if not self._need_keyframe and not self.dropped:
                logger.warning("recorder %s - sink behind, dropping video", self._label)
            self.dropped += 1
            self._need_keyframe = True
            return
        self._queue.put(("video", frame))

    def on_audio(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if self._started_at is None:
            self._early_audio.append(frame)
            del self._early_audio[:-MAX_EARLY_AUDIO]
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._queue.put(("audio", frame))

    def on_agent_audio(self, frame: EncodedFrame) -> None:
        """The agent's voice: the whole conversation is evidence, not only the phone."""
        if self._closed or self._started_at is None:
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._queue.put(("agent_audio", frame))

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.error is not None:
                continue
            kind, frame = item
            try:
                self._write(kind, frame)
            except Exception as exc:
                self.error = exc
                logger.exception("recorder %s x writing failed", self._label)
        self._finish()

    def _write(self, kind: str, frame: EncodedFrame) -> None:
        if self._container is None:
            self._open(frame)
        stream = self._streams[kind]
        if kind == "video" and frame.codec.name.upper() != self._video_codec:
            # the phone came back with another codec; one stream cannot hold both
            # TODO(recording per phone connection): start a new segment instead
            self.dropped += 1
            return
        packet = av.Packet(frame.data)
        packet.stream = stream
        packet.pts = packet.dts = self._clocks[kind].map(frame)
        packet.time_base = TIME_BASE
        if frame.keyframe and kind == "video":
            packet.is_keyframe = True
        self._container.mux(packet)  # type: ignore[union-attr]
        self.frames[kind] += 1

    def _open(self, first_video: EncodedFrame) -> None:
        assert self._started_at is not None
        container = av.open(
            self._adapter,
            mode="w",
            format="matroska",
            options={"live": "1"},
            container_options={"max_interleave_delta": MAX_INTERLEAVE_DELTA},
            # libav's own write buffer: small, so a crash loses little of the call
            buffer_size=4096,
        )
        codec = self._video_codec = first_video.codec.name.upper()
        if codec == "VP8":
            width, height = vp8_picture_size(first_video.data)
            video = container.add_mux_stream("vp8", width=width, height=height)
        elif codec == "H264":
            # the raw H.264 demuxer turns SPS and PPS into the stream's extradata,
            # which Matroska needs as CodecPrivate
            with av.open(io.BytesIO(first_video.data), format="h264") as template:
                video = container.add_stream_from_template(template.streams.video[0])
        else:
            raise ValueError(f"cannot record video codec {codec!r}")
        video.time_base = TIME_BASE
        audio = container.add_mux_stream("opus", rate=48000)
        audio.time_base = TIME_BASE
        audio.metadata["title"] = "phone"
        agent_audio = container.add_mux_stream("opus", rate=48000)
        agent_audio.time_base = TIME_BASE
        agent_audio.metadata["title"] = "agent"
        self._streams = {"video": video, "audio": audio, "agent_audio": agent_audio}
        self._clocks = {kind: _Clock(self._started_at) for kind in self._streams}
        self._container = container

    def _finish(self) -> None:
        try:
            if self._container is not None:
                self._container.close()
        except Exception:
            logger.exception("recorder %s x closing failed", self._label)
        finally:
            self._sink.close()

    def close(self) -> None:
        """Write what is queued, end the container and close the sink (blocking)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive() or self._started_at is not None:
            self._queue.put(None)
            self._thread.join()
        else:
            self._sink.close()

    async def stop(self) -> None:
        """Like `close`, off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)
