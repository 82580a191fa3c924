"""`identdesk bench cycles`: the whole server's memory over many call cycles.

A real `identdesk serve` runs as a child process; this process plays phone and
agent for N calls one after another (join, call, capture, decide, hang up) and
reads the server's resident memory as it goes. Memory that keeps growing with
the cycles is a leak; a flat line after warm-up is what we want.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import AudioStreamTrack, VideoStreamTrack

from identdesk.clients import (
    AgentClient,
    PhoneClient,
    ProtocolError,
    activate_and_consent,
    create_case,
)
from identdesk.qa import ServeProcess
from media.bench_peers import test_pattern


class PatternTrack(VideoStreamTrack):
    """A generated moving picture, as a phone camera would send it."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.size = (width, height)
        self.index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        planes = test_pattern(*self.size, self.index)  # planar YUV 4:2:0
        self.index += 1
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


def register(commands: Any) -> None:
    group = commands.group("bench", "measure the product on this machine")
    parser = group.add_parser(
        "cycles",
        help="server memory over N call-and-hang-up cycles",
        description=__doc__,
    )
    parser.add_argument("--count", type=int, default=50, help="call cycles")
    parser.add_argument("--seconds", type=float, default=2.0, help="call length")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_cycles)


WARM_UP_CALLS = 10


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # ended meanwhile
        return 0.0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def children(pid: int) -> list[int]:
    """The processes `pid` started (its media workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of the server and its workers (MB), in all and apart."""
    server = rss_mb(pid)
    workers = [rss_mb(w) for w in children(pid)]
    return {
        "rss_mb": server + sum(workers),
        "server_mb": server,
        "workers_mb": round(sum(workers), 1),
        "workers": float(len(workers)),
    }


def cmd_cycles(args: argparse.Namespace) -> int:
    if args.count < 2:
        print("error: --count needs at least 2 cycles", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="identdesk-cycles-") as tmp:
        server = ServeProcess(Path(tmp) / "data")
        server.start()
        try:
            assert server.proc is not None
            samples = asyncio.run(
                _cycles(
                    server.proc.pid,
                    server.base,
                    server.secret(r"API key (idk_\S+)"),
                    server.secret(r"password (\S+)"),
                    args,
                )
            )
        except (ProtocolError, aiohttp.ClientError, OSError) as exc:
            print(f"error: a cycle failed: {exc}", file=sys.stderr)
            print("the server's last lines:", file=sys.stderr)
            for line in server.output[-40:]:
                print("  " + line.rstrip(), file=sys.stderr)
            return 1
        finally:
            server.stop()
    _print(samples, args)
    return 0


async def _cycles(
    pid: int, base: str, key: str, password: str, args: argparse.Namespace
) -> list[dict[str, float]]:
    samples = [{"cycle": 0, "seconds": 0.0, **tree_rss_mb(pid)}]
    started = time.monotonic()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        agent = AgentClient(http, base)
        await agent.login("admin", password)
        for cycle in range(1, args.count + 1):
            await _one_call(http, base, key, agent, args.seconds)
            samples.append(
                {
                    "cycle": cycle,
                    "seconds": round(time.monotonic() - started, 1),
                    **tree_rss_mb(pid),
                }
            )
            print(
                f"cycle {cycle}/{args.count}: {samples[-1]['rss_mb']:.1f} MB",
                file=sys.stderr,
                flush=True,
            )
        await agent.close()
    return samples


async def _one_call(
    http: aiohttp.ClientSession, base: str, key: str, agent: AgentClient, seconds: float
) -> None:
    case = await create_case(http, base, key)
    consent = await activate_and_consent(http, case["activation_url"])
    phone = PhoneClient(
        http, base, tracks=lambda: [PatternTrack(640, 360), AudioStreamTrack()]
    )
    try:
        await phone.join(consent["tan"])
        await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(agent.frames + int(20 * seconds), timeout=30)
        await agent.capture("front")
        await agent.decide("reject", "document_invalid")
    finally:
        await phone.close()


def _print(samples: list[dict[str, float]], args: argparse.Namespace) -> None:
    # each process warms up over its first ten calls; workers share the calls
    workers = max(1, int(samples[-1]["workers"]))
    warm = samples[min(WARM_UP_CALLS * workers, len(samples) // 2)]
    last = samples[-1]
    per_cycle = (last["rss_mb"] - warm["rss_mb"]) / max(
        1, last["cycle"] - warm["cycle"]
    )
    summary = {
        "cycles": args.count,
        "start_mb": samples[0]["rss_mb"],
        "after_warmup_mb": warm["rss_mb"],
        "end_mb": last["rss_mb"],
        "growth_per_cycle_after_warmup_mb": round(per_cycle, 3),
        "samples": samples,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{args.count} call cycles of {args.seconds:.0f} s against `identdesk serve`"
        f" (resident memory of the server and its {int(last['workers'])} media"
        " workers)"
    )
    step = max(1, len(samples) // 10)
    for s in samples[::step]:
        print(
            f"  after cycle {int(s['cycle']):>3}: resident {s['rss_mb']:.1f} MB"
            f" (server {s['server_mb']:.1f}, workers {s['workers_mb']:.1f})"
        )
    print(
        f"resident in all: {samples[0]['rss_mb']:.1f} MB at start, "
        f"{warm['rss_mb']:.1f} MB after cycle {int(warm['cycle'])}, "
        f"{last['rss_mb']:.1f} MB after cycle {int(last['cycle'])}: "
        f"{per_cycle:+.3f} MB per cycle after warm-up"
    )
