"""Media gateway benchmark: N calls through the gateway, then through a plain relay.

Three processes per run, all on 127.0.0.1 (see `media.bench_peers`): the server
under test, the phones (each sends a pre-encoded moving test pattern, VP8 at
30 fps, and Opus audio) and the agents (each counts complete video frames as they
arrive). The baseline server is what aiortc offers out of the box: `MediaRelay`
to the agent (decode, re-encode) and `MediaRecorder` to mp4.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import multiprocessing.connection
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from media.bench_peers import (
    FPS,
    RESOLUTIONS,
    SETUP_TIMEOUT,
    _child_main,
    encode_clip,
    encode_tone,
    loopback_only,
)

__all__ = [
    "RESOLUTIONS",
    "encode_clip",
    "encode_tone",
    "format_report",
    "loopback_only",
    "run_bench",
]

# --- the processes ---------------------------------------------------------------


class _Rpc:
    """Calls into a child process over a pipe, from an asyncio loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn
        self._ids = itertools.count()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        while self._conn.poll():
            kind, call_id, value = self._conn.recv()
            future = self._futures.pop(call_id)
            if kind == "error":
                future.set_exception(RuntimeError(value))
            else:
                future.set_result(value)

    async def call(self, name: str, *args: Any) -> Any:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._futures[call_id] = future
        self._conn.send(("call", call_id, (name, args)))
        return await future

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self._conn.send(("quit", -1, None))


# --- the orchestration -------------------------------------------------------------


@dataclass
class CallResult:
    call: int
    cpu_cores: float  # the server process's CPU over the window, divided by calls
    fps: float
    frozen: int
    max_gap_ms: float
    rss_mb: float  # the server process's resident memory growth, divided by calls
    first_frame_s: float | None
    decodable: bool
    lost: int  # RTP packets lost on the way to the agent
    sent_fps: float  # video frames per second the phone sent (the phones may lag)


@dataclass
class RunResult:
    mode: str
    calls: list[CallResult]
    cpu_cores_total: float
    rss_mb_total: float
    rss_mb_idle: float
    max_loop_lag_ms: float
    phone_packets_lost: int
    phones_cores: float  # CPU of the phones' process: they compete for the machine

    def summary(self) -> dict[str, float]:
        first = [c.first_frame_s for c in self.calls if c.first_frame_s is not None]
        return {
            "cpu_cores_per_call": self.cpu_cores_total / max(len(self.calls), 1),
            "rss_mb_per_call": self.calls[0].rss_mb if self.calls else 0.0,
            "min_fps": min((c.fps for c in self.calls), default=0.0),
            "frozen_total": float(sum(c.frozen for c in self.calls)),
            "first_frame_max_s": max(first, default=float("nan")),
            # CPU per frame delivered to the agents, in cores per 30 fps call: a
            # relay that cannot keep up uses little CPU but delivers little
            "cpu_cores_per_30fps": sum(c.cpu_cores for c in self.calls)
            / max(sum(c.fps for c in self.calls) / FPS, 1e-9),
        }


class _Run:
    def __init__(
        self, mode: str, clip: list[bytes], tone: list[bytes], *server_args: Any
    ) -> None:
        self.mode = mode
        self.clip = clip
        self.tone = tone
        self.server_args = server_args

    def _spawn(self, role: str, *args: Any) -> tuple[Any, _Rpc]:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_child_main, args=(role, child, *args), daemon=True
        )
        process.start()
        child.close()
        return process, _Rpc(parent)

    async def run(self, calls: int, seconds: float, progress: TextIO) -> RunResult:
        with tempfile.TemporaryDirectory(prefix="identdesk-bench-") as record_dir:
            spawned = [
                self._spawn(self.mode, record_dir, *self.server_args),
                self._spawn("phones", self.clip, self.tone),
                self._spawn("agents"),
            ]
            server, phones, agents = (rpc for _, rpc in spawned)
            try:
                # the children import aiortc first; that is not call set-up time
                await asyncio.gather(*(rpc.call("ready") for _, rpc in spawned))
                return await self._measure(
                    server, phones, agents, calls, seconds, progress
                )
            finally:
                for _, rpc in spawned:
                    rpc.close()
                for process, _ in spawned:
                    await asyncio.get_running_loop().run_in_executor(
                        None, process.join, 10
                    )
                    if process.is_alive():
                        process.kill()

    async def _measure(
        self,
        server: _Rpc,
        phones: _Rpc,
        agents: _Rpc,
        calls: int,
        seconds: float,
        progress: TextIO,
    ) -> RunResult:
        async def start_call(call: int) -> float | None:
            await asyncio.sleep(call * 0.2)
            joined = time.time()
            offer = await phones.call("offer", call)
            await phones.call(
                "answer", call, await server.call("offer", call, "phone", offer)
            )
            offer = await agents.call("offer", call)
            await agents.call(
                "answer", call, await server.call("offer", call, "agent", offer)
            )
            first = await agents.call("first_frame", call, SETUP_TIMEOUT)
            return None if first is None else first - joined

        name = "gateway" if self.mode in ("server", "workers") else self.mode
        print(f"{name}: starting {calls} calls", file=progress, flush=True)
        firsts = await asyncio.gather(*(start_call(call) for call in range(calls)))
        print(f"{name}: measuring {seconds:g} s", file=progress, flush=True)
        await server.call("measure_start")
        await phones.call("measure_start")
        start = time.time()
        await asyncio.sleep(seconds)
        end = time.time()
        usage = await server.call("measure_stop")
        reports = [
            await agents.call("report", call, start, end) for call in range(calls)
        ]
        sent = [await phones.call("sent", call, start, end) for call in range(calls)]
        for call in range(calls):
            await phones.call("hangup", call)
            await agents.call("hangup", call)
            await server.call("hangup", call)
        growth = max(usage["rss"] - usage["rss_idle"], 0.0) / calls / 2**20
        results = [
            CallResult(
                call=call,
                cpu_cores=usage["cores"] / calls,
                fps=report["fps"],
                frozen=report["frozen"],
                max_gap_ms=report["max_gap_ms"],
                rss_mb=growth,
                first_frame_s=first,
                decodable=report["decodable"],
                lost=report["lost"],
                sent_fps=sent[call]["fps"],
            )
            for call, (report, first) in enumerate(zip(reports, firsts, strict=True))
        ]
        return RunResult(
            self.mode,
            results,
            usage["cores"],
            usage["rss"] / 2**20,
            usage["rss_idle"] / 2**20,
            usage["max_loop_lag_ms"],
            int(usage["phone_packets_lost"]),
            sent[0]["cores"],
        )


async def run_bench(
    calls: int,
    seconds: float,
    resolution: str = "720p",
    baseline_calls: int | None = None,
    progress: TextIO | None = None,
    tap: str = "demand",
    workers: int = 0,
) -> dict[str, Any]:
    """Measure the gateway (in `workers` worker processes, or in the server
    process when 0) and the baseline; returns the report as plain data."""
    progress = progress or sys.stderr
    print(f"encoding the {resolution} test pattern", file=progress, flush=True)
    loop = asyncio.get_running_loop()
    clip = await loop.run_in_executor(None, encode_clip, resolution)
    tone = await loop.run_in_executor(None, encode_tone)
    if workers:
        gateway = _Run("workers", clip, tone, tap, workers)
    else:
        gateway = _Run("server", clip, tone, tap)
    runs = {"gateway": await gateway.run(calls, seconds, progress)}
    if baseline_calls is None:
        baseline_calls = calls
    if baseline_calls > 0:
        runs["baseline"] = await _Run("baseline", clip, tone).run(
            baseline_calls, seconds, progress
        )
    report: dict[str, Any] = {
        "calls": calls,
        "seconds": seconds,
        "resolution": resolution,
        "tap": tap,
        "workers": workers,
        "cpu_count": os.cpu_count(),
    }
    for name, result in runs.items():
        report[name] = {
            "calls": [asdict(c) for c in result.calls],
            "cpu_cores_total": result.cpu_cores_total,
            "rss_mb_total": result.rss_mb_total,
            "rss_mb_idle": result.rss_mb_idle,
            "max_loop_lag_ms": result.max_loop_lag_ms,
            "phone_packets_lost": result.phone_packets_lost,
            "phones_cores": result.phones_cores,
            **result.summary(),
        }
    if "baseline" in report:
        gateway, base = report["gateway"], report["baseline"]
        report["ratio"] = {
            key: base[key] / gateway[key] if gateway[key] else float("inf")
            for key in ("cpu_cores_per_call", "cpu_cores_per_30fps", "rss_mb_per_call")
        }
    return report


def _lost(count: int) -> str:
    return "n/a (in the workers)" if count < 0 else str(count)


def format_report(report: dict[str, Any]) -> str:
    """The report as a table per run, then the ratios."""
    lines = [
        f"{report['calls']} calls, {report['seconds']:g} s, {report['resolution']},"
        f" frame tap decoding {report['tap']},"
        f" {report.get('workers') or 'no'} media worker processes,"
        f" {report['cpu_count']} CPUs,"
        f" load average {os.getloadavg()[0]:.1f}"
    ]
    header = (
        f"{'run':9} {'call':>4} {'cores':>6} {'sent':>5} {'fps':>5} {'frozen':>6}"
        f" {'max gap ms':>10} {'MB':>6} {'first s':>7} {'decodes':>7} {'lost':>5}"
    )
    for name in ("gateway", "baseline"):
        if name not in report:
            continue
        run = report[name]
        lines += ["", header]
        for c in run["calls"]:
            first = "-" if c["first_frame_s"] is None else f"{c['first_frame_s']:.2f}"
            lines.append(
                f"{name:9} {c['call']:>4} {c['cpu_cores']:>6.3f} {c['sent_fps']:>5.1f}"
                f" {c['fps']:>5.1f}"
                f" {c['frozen']:>6} {c['max_gap_ms']:>10.0f} {c['rss_mb']:>6.1f}"
                f" {first:>7} {'yes' if c['decodable'] else 'no':>7} {c['lost']:>5}"
            )
        lines.append(
            f"{name}: {run['cpu_cores_total']:.3f} cores in all,"
            f" {run['cpu_cores_per_call']:.3f} per call"
            f" ({run['cpu_cores_per_30fps']:.3f} per call at 30 fps delivered);"
            f" resident"
            f" {run['rss_mb_total']:.0f} MB ({run['rss_mb_idle']:.0f} MB before calls);"
            f" min fps {run['min_fps']:.1f}; frozen {run['frozen_total']:.0f};"
            f" first frame max {run['first_frame_max_s']:.2f} s;"
            f" server loop lag max {run['max_loop_lag_ms']:.0f} ms;"
            f" packets lost from phones {_lost(run['phone_packets_lost'])};"
            f" phones' process {run['phones_cores']:.2f} cores"
        )
    if "ratio" in report:
        ratio = report["ratio"]
        lines += [
            "",
            f"baseline / gateway: CPU x{ratio['cpu_cores_per_call']:.1f},"
            f" CPU per delivered frame x{ratio['cpu_cores_per_30fps']:.1f},"
            f" memory per call x{ratio['rss_mb_per_call']:.1f}",
        ]
    return "\n".join(lines)
