"""The benchmark's server with calls in media worker processes (`media.workers`).

Like `media.bench_peers._Server`, but each call goes to a `WorkerPool`; the CPU
and memory figures add up the server process and its workers.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from media.bench_peers import _ServerBase

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields after the name: state is 0, utime 11, stime 12
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _proc_rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


class WorkersServer(_ServerBase):
    """The gateway under test, its calls spread over `workers` processes."""

    def __init__(self, record_dir: str, tap: str, workers: int) -> None:
        from media.admission import Admission
        from media.workers import WorkerPool

        self.pool = WorkerPool(workers, "WARNING", Admission(max_calls=1000))
        self.started = False
        self.media: dict[int, Any] = {}
        self.sinks: dict[int, Any] = {}
        self.tap = tap
        self.wanting: list[asyncio.Task[None]] = []
        super().__init__(record_dir)

    def _pids(self) -> list[int]:
        return [os.getpid()] + [w.pid for w in self.pool.workers if w.pid]

    def cpu_seconds(self) -> float:
        return sum(_proc_cpu_seconds(pid) for pid in self._pids())

    def rss_bytes(self) -> int:
        return sum(_proc_rss_bytes(pid) for pid in self._pids())

    async def ready(self) -> bool:
        await self.pool.start()
        self.rss_idle = self.rss_bytes()
        return True

    async def _want_frames(self, media: Any) -> None:
        while True:
            media.tap.want(2.0)
            await asyncio.sleep(1.0)

    async def offer(self, call: int, leg: str, offer: dict[str, str]) -> dict[str, str]:
        if call not in self.media:
            sink = open(os.path.join(self.record_dir, f"call-{call}.mkv"), "wb")  # noqa: SIM115
            self.sinks[call] = sink
            self.media[call] = self.pool.open_call(f"call-{call}", (), sink)
            if self.tap == "always":
                want = self._want_frames(self.media[call])
                self.wanting.append(asyncio.ensure_future(want))
        answer = await self.media[call].answer(leg, offer["sdp"])
        return {"sdp": answer, "type": "answer"}

    async def _packets_lost(self) -> int:
        return -1  # the receivers are in the workers

    async def hangup(self, call: int) -> None:
        await self.media.pop(call).stop()

    async def close(self) -> None:
        for task in self.wanting:
            task.cancel()
        for media in list(self.media.values()):
            await media.stop()
        await self.pool.close()
