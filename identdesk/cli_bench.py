"""`identdesk bench ...`: measurements of the product on this machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from media.bench import RESOLUTIONS, format_report, run_bench
from signaling.config import media_workers_from_env, parse_media_workers


def register(commands: Any) -> None:
    group = commands.group("bench", "measure the product on this machine")
    parser = group.add_parser(
        "media",
        help="relay and record N calls through the media gateway and a plain relay",
        description="Runs N calls (phone and agent peers in their own processes, "
        "127.0.0.1 only) through the media gateway, then through aiortc's "
        "MediaRelay + MediaRecorder, and prints per call: server CPU, fps at the "
        "agent, frozen intervals, resident memory and first-frame time.",
    )
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per run"
    )
    parser.add_argument(
        "--resolution",
        choices=list(RESOLUTIONS),
        default="720p",
        help="of the phones' video (360p for quick checks)",
    )
    parser.add_argument(
        "--baseline-calls",
        type=int,
        default=None,
        help="calls for the baseline run (default: --calls; 0 skips it)",
    )
    parser.add_argument(
        "--tap",
        choices=["demand", "always"],
        default="demand",
        help="frame tap decoding: only on demand (default) or every frame all call",
    )
    parser.add_argument(
        "--workers",
        type=parse_media_workers,
        default=None,
        help="media worker processes carrying the gateway's calls, as in "
        "`identdesk serve` (default: IDENTDESK_MEDIA_WORKERS, else one per core; "
        "0 = in the server process); CPU and memory add up the server and its "
        "workers",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_bench_media)


def _bench_media(args: argparse.Namespace) -> int:
    if args.workers is None:
        args.workers = media_workers_from_env()
    if args.calls < 1 or args.seconds <= 0:
        print(
            f"--calls must be at least 1 and --seconds positive, got "
            f"{args.calls} and {args.seconds:g}",
            file=sys.stderr,
        )
        return 2
    report = asyncio.run(
        run_bench(
            args.calls,
            args.seconds,
            args.resolution,
            args.baseline_calls,
            tap=args.tap,
            workers=args.workers,
        )
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
