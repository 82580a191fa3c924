"""Calls spread over media worker processes.

All calls of one process share its event loop and, through the GIL, one core;
past ~0.8 of it packets wait and video freezes. The pool starts one worker per
core (`media.worker`), gives each new call to the worker with the fewest calls,
and keeps admission control for the whole machine here in the server. The
server keeps the signaling, the cases and the evidence store: a worker hands
back the recording's bytes, which the server encrypts as they come, and decoded
frames while the frame tools want them.

A worker that dies takes its calls with it, but nothing else: those calls end
with `on_lost` (the server puts the phones back in the queue), what was
recorded so far is kept, and a new worker takes the dead one's place.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, BinaryIO

import av
import numpy as np

from media.admission import Admission, admission
from media.call_media import LEGS, OfferError, StateCallback
from media.frametap import LatestFrame
from media.ipc import ProtocolError, pack, read_message

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # a worker imports aiortc and av before it is ready
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
RESTART_DELAY = 1.0
# a want is sent on when it extends the worker's deadline by more than this
WANT_SLACK = 1.0


class WorkerUnavailableError(RuntimeError):
    """No media worker can take a call right now."""

    def __init__(self) -> None:
        super().__init__("the media service is restarting; try again in a few seconds")


class WorkerLostError(RuntimeError):
    """The worker carrying a call ended while a request was under way."""


class RemoteTap(LatestFrame):
    """The server-side mirror of a worker's frame tap (see `media.frametap`)."""

    def __init__(self, media: RemoteCallMedia) -> None:
        super().__init__()
        self._media = media
        self._wanted_until = 0.0

    def want(self, seconds: float = 5.0) -> None:
        until = time.monotonic() + seconds
        if until > self._wanted_until + WANT_SLACK:
            self._wanted_until = until
            self._media.send({"op": "want", "seconds": seconds})

    def deliver(self, header: dict[str, Any], body: bytes) -> None:
        width, height = int(header["w"]), int(header["h"])
        pixels = np.frombuffer(body, dtype=np.uint8)
        if header.get("fmt") == "yuv420p":
            frame = av.VideoFrame.from_ndarray(
                pixels.reshape(height * 3 // 2, width), format="yuv420p"
            )
        else:
            frame = av.VideoFrame.from_ndarray(
                pixels.reshape(height, width, 3), format="bgr24"
            )
        self.count = int(header.get("count", self.count + 1))
        self.received = int(header.get("received", self.received))
        self._set_latest(frame)


class RemoteCallMedia:
    """A call carried by a worker process; the interface of `LocalCallMedia`."""

    def __init__(
        self,
        worker: WorkerProcess,
        call: int,
        label: str,
        recording_sink: BinaryIO | None,
        on_state: StateCallback | None,
        on_lost: Callable[[], Awaitable[None]] | None,
        admission: Admission,
    ) -> None:
        self.worker = worker
        self.call = call
        self.label = label
        self.tap = RemoteTap(self)
        self.lost = False
        self._sink = recording_sink
        self._on_state = on_state
        self._on_lost = on_lost
        self._admission = admission
        self._legs: set[str] = set()
        self._stopped = False

    def send(self, header: dict[str, Any]) -> None:
        if not self.lost:
            self.worker.send({**header, "call": self.call})

    async def _request(self, header: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.lost:
            raise WorkerLostError(f"{self.label}: its media worker has ended")
        return await self.worker.request({**header, "call": self.call}, timeout)

    def has_leg(self, leg: str) -> bool:
        return leg in self._legs

    async def answer(self, leg: str, sdp: str) -> str:
        if leg not in LEGS:
            raise OfferError(f"unknown side {leg!r}")
        reply = await self._request(
            {"op": "offer", "leg": leg, "sdp": sdp}, REQUEST_TIMEOUT
        )
        if reply.get("error") == "bad_sdp":
            raise OfferError(str(reply.get("message")))
        if "sdp" not in reply:
            raise WorkerLostError(
                f"{self.label}: the media worker failed: {reply.get('message')}"
            )
        self._legs.add(leg)
        return str(reply["sdp"])

    async def close_leg(self, leg: str) -> None:
        self._legs.discard(leg)
        if not self.lost:
            await self._request({"op": "close_leg", "leg": leg}, REQUEST_TIMEOUT)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._legs.clear()
        try:
            if not self.lost:
                await self._request({"op": "stop"}, STOP_TIMEOUT)
        except (WorkerLostError, TimeoutError) as exc:
            logger.warning("%s x the worker did not stop the call: %s", self.label, exc)
        finally:
            self.worker.calls.pop(self.call, None)
            self._admission.release(self.label)
            # as the in-process recorder does: the recording ends with the call
            if self._sink is not None:
                self._sink.close()

    def event(self, header: dict[str, Any], body: bytes) -> None:
        kind = header.get("ev")
        if kind == "rec":
            if self._sink is not None:
                self._sink.write(body)
        elif kind == "frame":
            self.tap.deliver(header, body)
        elif kind == "state" and self._on_state is not None:
            state_leg = str(header.get("leg"))
            if state_leg in self._legs:
                asyncio.ensure_future(
                    self._on_state(state_leg, str(header.get("state")))
                )

    def worker_ended(self) -> None:
        self.lost = True
        self._legs.clear()
        logger.warning("%s x its media worker ended; the call is lost", self.label)
        if self._on_lost is not None and not self._stopped:
            asyncio.ensure_future(self._on_lost())


def _worker_environment() -> dict[str, str]:
    """The server's environment without identdesk's settings: the master key and
    the database and mail passwords stay in the server; a worker needs none."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IDENTDESK_")}


# `python -m media.worker` with SIGTERM ignored, as the worker ignores SIGINT: a
# service manager signals the whole process group (or cgroup), and the server,
# which gets the same signal, ends its workers in order (an exit request, then the
# socket closed; SIGKILL past STOP_TIMEOUT). An ignored signal stays ignored
# across exec, so it is set before the worker's module runs.
_LAUNCH = (
    "import runpy, signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "runpy.run_module('media.worker', run_name='__main__', alter_sys=True)"
)


class WorkerProcess:
    """One `media.worker` child and the socket pair to it."""

    def __init__(self, index: int, log_level: str) -> None:
        self.index = index
        self.log_level = log_level
        self.pid: int | None = None
        self.calls: dict[int, RemoteCallMedia] = {}
        self.alive = False
        self._stopping = False
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self.ended = asyncio.Event()

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _LAUNCH,
                "--fd",
                str(theirs.fileno()),
                "--index",
                str(self.index),
                "--log-level",
                self.log_level,
                pass_fds=(theirs.fileno(),),
                env=_worker_environment(),
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._ready = asyncio.get_running_loop().create_future()
        self._reading = asyncio.ensure_future(self._read(reader))
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT)
        except TimeoutError:
            await self.kill()
            raise
        self.pid = int(hello["pid"])
        self.alive = True
        logger.info("- media worker %d started (pid %d)", self.index, self.pid)

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        if self.alive and self._writer is not None and not self._writer.is_closing():
            self._writer.write(pack(header, body))

    async def request(self, header: dict[str, Any], timeout: float) -> dict[str, Any]:
        if not self.alive:
            raise WorkerLostError(f"media worker {self.index} has ended")
        number = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._replies[number] = future
        self.send({**header, "id": number})
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._replies.pop(number, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                header, body = message
                if header.get("ev") == "ready":
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(header)
                elif "id" in header:
                    future = self._replies.get(int(header["id"]))
                    if future is not None and not future.done():
                        future.set_result(header)
                else:
                    media = self.calls.get(int(header.get("call", -1)))
                    if media is not None:
                        media.event(header, body)
        except ConnectionError:
            pass  # the worker went away; `_ended` says so unless we stopped it
        except (ProtocolError, ValueError) as exc:
            logger.error("x media worker %d sent garbage: %s", self.index, exc)
        finally:
            self._ended()

    def _ended(self) -> None:
        was_alive, self.alive = self.alive, False
        for future in self._replies.values():
            if not future.done():
                future.set_exception(
                    WorkerLostError(f"media worker {self.index} has ended")
                )
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                WorkerLostError(f"media worker {self.index} ended while starting")
            )
        lost = list(self.calls.values())
        self.calls.clear()
        for media in lost:
            media.worker_ended()
        if self._writer is not None:
            self._writer.close()
        if was_alive and not self._stopping:
            logger.error(
                "x media worker %d (pid %s) ended with %d calls",
                self.index,
                self.pid,
                len(lost),
            )
        self.ended.set()

    async def stop(self) -> None:
        """Ask the worker to end its calls and exit; kill it if it does not."""
        self._stopping = True
        if self.alive:
            try:
                await self.request({"op": "exit"}, STOP_TIMEOUT)
            except (WorkerLostError, TimeoutError):
                pass
        self.alive = False
        if self._writer is not None:
            self._writer.close()
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await self.kill()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)

    async def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


class WorkerPool:
    """Starts `count` workers, places calls on them and replaces dead ones."""

    def __init__(
        self, count: int, log_level: str = "INFO", admission: Admission = admission
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.admission = admission
        self._log_level = log_level
        self.workers = [WorkerProcess(i, log_level) for i in range(count)]
        self._calls = itertools.count(1)
        self._watchers: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        await asyncio.gather(*(w.start() for w in self.workers))
        self._watchers = [
            asyncio.ensure_future(self._watch(i)) for i in range(len(self.workers))
        ]

    async def _watch(self, index: int) -> None:
        """Replace worker `index` whenever it ends, until the pool closes."""
        while not self._closing:
            await self.workers[index].ended.wait()
            if self._closing:
                return
            await asyncio.sleep(RESTART_DELAY)
            if self._closing:
                return
            worker = WorkerProcess(index, self._log_level)
            self.workers[index] = worker
            try:
                await worker.start()
            except (WorkerLostError, TimeoutError, OSError) as exc:
                logger.error("x media worker %d did not start again: %s", index, exc)

    def open_call(
        self,
        label: str,
        stun_urls: Sequence[str] = (),
        recording_sink: BinaryIO | None = None,
        on_state: StateCallback | None = None,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> RemoteCallMedia:
        """Place a new call on the least busy worker; raises `GatewayFullError`
        when the machine is full, `WorkerUnavailableError` when no worker runs."""
        alive = [w for w in self.workers if w.alive]
        if not alive:
            raise WorkerUnavailableError()
        self.admission.admit(label)
        call = next(self._calls)
        # the fewest calls; among equals, turn by turn, so wear is shared too
        worker = min(
            alive, key=lambda w: (len(w.calls), (w.index - call) % len(self.workers))
        )
        media = RemoteCallMedia(
            worker, call, label, recording_sink, on_state, on_lost, self.admission
        )
        worker.calls[call] = media
        worker.send(
            {
                "op": "open",
                "call": call,
                "label": label,
                "stun": list(stun_urls),
                "record": recording_sink is not None,
            }
        )
        return media

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"index": w.index, "pid": w.pid, "alive": w.alive, "calls": len(w.calls)}
            for w in self.workers
        ]

    async def close(self) -> None:
        self._closing = True
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self.workers))
