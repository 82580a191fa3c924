"""The media gateway of one call: phone media to the agent, agent media to the phone.

Both peer connections terminate in the server (DTLS-SRTP on each leg). Tracks are
joined through `ProxyTrack`s so either side may (re)connect in any order without
renegotiating the other leg, e.g. when the phone reloads its page mid-call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import BinaryIO

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.recorder import Recorder

logger = logging.getLogger(__name__)


class ProxyTrack(MediaStreamTrack):
    """A track whose source can be set and replaced while it is being sent."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._source: MediaStreamTrack | None = None
        self._changed = asyncio.Event()

    def set_source(self, source: MediaStreamTrack | None) -> None:
        self._source = source
        self._changed.set()

    async def recv(self) -> av.frame.Frame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._source
            if source is None or source.readyState != "live":
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                return await source.recv()
            except MediaStreamError:
                if self._source is source:
                    self._source = None


class FrameTap:
    """Keeps the latest decoded full-resolution frame of a video track."""

    def __init__(self) -> None:
        self.frame: av.VideoFrame | None = None
        self.received_at = 0.0
        self.count = 0
        self.first_frame = asyncio.Event()
        self._new = asyncio.Condition()

    async def run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frame = frame  # type: ignore[assignment]
            self.received_at = time.monotonic()
            self.count += 1
            self.first_frame.set()
            async with self._new:
                self._new.notify_all()

    async def next_frame(self, timeout: float) -> av.VideoFrame:
        """The next frame to arrive, or the latest one when none comes in time."""
        async with self._new:
            try:
                await asyncio.wait_for(self._new.wait(), timeout)
            except TimeoutError:
                pass
        if self.frame is None:
            raise LookupError("no video frame has been received from the phone yet")
        return self.frame

    def latest_array(self) -> np.ndarray:
        if self.frame is None:
            raise LookupError("no video frame has been received from the phone yet")
        return self.frame.to_ndarray(format="bgr24")


class MediaGateway:
    """Relays and records one call; knows nothing of cases or agents."""

    def __init__(self, label: str, recording_sink: BinaryIO | None = None) -> None:
        self.label = label
        self._relay = MediaRelay()
        self.to_agent = {"audio": ProxyTrack("audio"), "video": ProxyTrack("video")}
        self.to_phone = {"audio": ProxyTrack("audio"), "video": ProxyTrack("video")}
        self.tap = FrameTap()
        self._sink = recording_sink
        self._recorder: Recorder | None = None
        self._record_sources = {
            "audio": ProxyTrack("audio"),
            "video": ProxyTrack("video"),
        }
        self._tasks: list[asyncio.Task[None]] = []
        self.phone_connected_at: float | None = None

    def attach_phone(self, pc: RTCPeerConnection) -> None:
        """Call before applying the phone's offer: routes its tracks and adds ours."""
        for kind in ("audio", "video"):
            pc.addTrack(self.to_phone[kind])

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            logger.info("%s - phone track %s", self.label, track.kind)
            self.phone_connected_at = time.monotonic()
            # unbuffered for video: a slow encoder skips stale frames instead of
            # queueing them without bound
            video = track.kind == "video"
            self.to_agent[track.kind].set_source(
                self._relay.subscribe(track, buffered=not video)
            )
            self._record_sources[track.kind].set_source(self._relay.subscribe(track))
            if video:
                tap_source = self._relay.subscribe(track, buffered=False)
                self._tasks.append(asyncio.ensure_future(self.tap.run(tap_source)))
                self._tasks.append(asyncio.ensure_future(self._start_recording()))

    def attach_agent(self, pc: RTCPeerConnection) -> None:
        """Call before applying the agent's offer."""
        for kind in ("audio", "video"):
            pc.addTrack(self.to_agent[kind])

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            logger.info("%s - agent track %s", self.label, track.kind)
            self.to_phone[track.kind].set_source(self._relay.subscribe(track))

    async def _start_recording(self) -> None:
        # the container header needs the picture size, so wait for the first frame
        if self._sink is None or self._recorder is not None:
            return
        await self.tap.first_frame.wait()
        if self._recorder is not None or self.tap.frame is None:
            return
        frame = self.tap.frame
        self._recorder = Recorder(self._sink, label=self.label)
        self._recorder.add_track(self._record_sources["video"], frame.width, frame.height)
        self._recorder.add_track(self._record_sources["audio"])
        await self._recorder.start()

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    async def stop(self) -> None:
        for track in (
            *self.to_agent.values(),
            *self.to_phone.values(),
            *self._record_sources.values(),
        ):
            track.stop()
        if self._recorder is not None:
            await self._recorder.stop()
        elif self._sink is not None:
            self._sink.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
