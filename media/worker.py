"""A media worker process: carries calls for the server that started it.

Started by `media.workers.WorkerPool` as `python -m media.worker --fd N`, with one
end of a socket pair as file descriptor N. The server sends offers and commands;
the worker answers, and sends back connection states, the recording's bytes
(which the server encrypts and stores: no plaintext leaves this pair) and, while
the server wants them, decoded frames at a bounded rate. The worker exits when
the server's end closes, so a killed server leaves no worker behind.
"""

from __future__ import annotations

import os

# one thread per numeric pool: the worker's core belongs to its calls
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

from media.admission import Admission  # noqa: E402
from media.call_media import LocalCallMedia, OfferError  # noqa: E402
from media.ipc import ProtocolError, pack_parts, read_message  # noqa: E402

logger = logging.getLogger("media.worker")

# decoded frames sent to the server per call and second, at most; the frame tools
# sample a few per second, the torch challenge up to 10
FORWARD_FPS = 15
# frames are dropped, never queued, while this much is unsent to the server
MAX_UNSENT_BYTES = 16 << 20
# recording bytes are sent in pieces of about this size, at every flush, and at
# least this often, so a killed server loses no more than that of the recording
RECORDING_PIECE = 64 << 10
RECORDING_LATENCY = 0.25


class _RecordingPipe:
    """The recorder's sink: hands its bytes to the server, in order, from any thread."""

    def __init__(self, worker: Worker, call: int) -> None:
        self._worker = worker
        self._call = call
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._handed_at = time.monotonic()

    def write(self, data: bytes) -> int:
        with self._lock:
            self._buffer += data
            if (
                len(self._buffer) >= RECORDING_PIECE
                or time.monotonic() - self._handed_at > RECORDING_LATENCY
            ):
                self._hand_over()
        return len(data)

    def flush(self) -> None:
        with self._lock:
            self._hand_over()

    def close(self) -> None:
        self.flush()

    def _hand_over(self) -> None:
        self._handed_at = time.monotonic()
        if not self._buffer:
            return
        piece = bytes(self._buffer)
        self._buffer.clear()
        header = {"ev": "rec", "call": self._call}
        if threading.current_thread() is threading.main_thread():
            self._worker.send(header, piece)
        else:
            self._loop.call_soon_threadsafe(self._worker.send, header, piece)


class _FrameForwarder:
    """Sends the tap's newest frame to the server, at most FORWARD_FPS a second."""

    def __init__(self, worker: Worker, call: int, media: LocalCallMedia) -> None:
        self._worker = worker
        self._call = call
        self._tap = media.tap
        self._loop = asyncio.get_running_loop()
        self._last_sent = 0.0
        self._pending: av.VideoFrame | None = None
        self._timer: asyncio.TimerHandle | None = None
        # frames go to the server only while it asked for them: the tap also
        # decodes the first seconds of each call, which nobody needs sent
        self._wanted_until = 0.0
        self._tap.listeners.append(self._on_frame)

    def want(self, seconds: float) -> None:
        self._wanted_until = max(self._wanted_until, self._loop.time() + seconds)
        self._tap.want(seconds)

    def _on_frame(self, frame: av.VideoFrame) -> None:
        if self._loop.time() > self._wanted_until:
            return
        self._pending = frame
        if self._timer is not None:
            return
        wait = self._last_sent + 1 / FORWARD_FPS - self._loop.time()
        if wait <= 0:
            self._send()
        else:
            self._timer = self._loop.call_later(wait, self._send)

    def _send(self) -> None:
        self._timer = None
        frame, self._pending = self._pending, None
        if frame is None:
            return
        self._last_sent = self._loop.time()
        if self._worker.unsent() > MAX_UNSENT_BYTES:
            return  # the server is behind: a stale frame helps nobody
        if frame.width % 2 or frame.height % 2:
            fmt = "bgr24"
        else:
            fmt = "yuv420p"
        data = frame.to_ndarray(format=fmt)
        header = {
            "ev": "frame",
            "call": self._call,
            "w": frame.width,
            "h": frame.height,
            "fmt": fmt,
            "count": self._tap.count,
            "received": self._tap.received,
        }
        self._worker.send(header, np.ascontiguousarray(data).data.cast("B"))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._on_frame in self._tap.listeners:
            self._tap.listeners.remove(self._on_frame)


class Worker:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.calls: dict[int, LocalCallMedia] = {}
        self._pipes: dict[int, _RecordingPipe] = {}
        self._forwarders: dict[int, _FrameForwarder] = {}
        # the server admits calls; this process carries what it is given
        self._admission = Admission(max_calls=1 << 16)

    def send(self, header: dict[str, Any], body: bytes | memoryview = b"") -> None:
        if not self._writer.is_closing():
            # header and body separately: a frame's megabytes are not copied again
            self._writer.writelines(pack_parts(header, body))

    def unsent(self) -> int:
        return self._writer.transport.get_write_buffer_size()

    async def run(self) -> None:
        self.send({"ev": "ready", "pid": os.getpid()})
        try:
            while True:
                message = await read_message(self._reader)
                if message is None:
                    break
                header, _ = message
                if header.get("op") == "exit":
                    await self._stop_all()
                    self.send({"id": header.get("id"), "ok": True})
                    await self._writer.drain()
                    break
                # commands for different calls may overlap (an offer takes a while)
                asyncio.ensure_future(self._handle(header))
        except ProtocolError:
            logger.exception("x the server sent a malformed message")
        except ConnectionError:
            pass  # the server is gone: end as when it closes its end
        finally:
            await self._stop_all()
            self._writer.close()

    async def _handle(self, header: dict[str, Any]) -> None:
        request = header.get("id")
        try:
            reply = await self._dispatch(header)
        except OfferError as exc:
            reply = {"error": "bad_sdp", "message": str(exc)}
        except Exception as exc:  # every request gets an answer
            logger.exception("x %s failed", header.get("op"))
            reply = {"error": "worker_error", "message": str(exc)}
        if request is not None:
            self.send({"id": request, **reply})

    async def _dispatch(self, header: dict[str, Any]) -> dict[str, Any]:
        op = header.get("op")
        call = int(header.get("call", -1))
        if op == "open":
            pipe = _RecordingPipe(self, call) if header.get("record") else None
            media = LocalCallMedia(
                str(header.get("label", f"call {call}")),
                tuple(header.get("stun", ())),
                recording_sink=pipe,  # type: ignore[arg-type]
                on_state=lambda leg, state: self._state(call, leg, state),
                admission=self._admission,
            )
            self.calls[call] = media
            if pipe is not None:
                self._pipes[call] = pipe
            self._forwarders[call] = _FrameForwarder(self, call, media)
            return {"ok": True}
        known = self.calls.get(call)
        if known is None:
            return {"error": "no_call", "message": f"no call {call} in this worker"}
        if op == "offer":
            return {"sdp": await known.answer(str(header["leg"]), str(header["sdp"]))}
        if op == "close_leg":
            await known.close_leg(str(header["leg"]))
            return {"ok": True}
        if op == "want":
            self._forwarders[call].want(float(header.get("seconds", 5.0)))
            return {"ok": True}
        if op == "stop":
            await self._stop(call)
            return {"ok": True}
        return {"error": "unknown_op", "message": f"unknown operation {op!r}"}

    async def _state(self, call: int, leg: str, state: str) -> None:
        self.send({"ev": "state", "call": call, "leg": leg, "state": state})

    async def _stop(self, call: int) -> None:
        media = self.calls.pop(call, None)
        if media is None:
            return
        forwarder = self._forwarders.pop(call, None)
        if forwarder is not None:
            forwarder.close()
        await media.stop()
        pipe = self._pipes.pop(call, None)
        if pipe is not None:
            pipe.flush()  # the last bytes go before the reply

    async def _stop_all(self) -> None:
        for call in list(self.calls):
            await self._stop(call)


async def _main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    # the server ends the worker by closing its end; Ctrl-C in a terminal reaches
    # the whole process group, and the server does the orderly stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    await Worker(reader, writer).run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m media.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    os.umask(0o077)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s worker{args.index} %(name)s: %(message)s",
    )
    if args.log_level != "DEBUG":
        logging.getLogger("aioice").setLevel(logging.WARNING)
        logging.getLogger("aiortc").setLevel(logging.WARNING)
    asyncio.run(_main(args.fd))


if __name__ == "__main__":
    main()
