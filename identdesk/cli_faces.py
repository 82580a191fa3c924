"""`identdesk eval faces`: face finding figures, the array cascade beside the
window-by-window evaluation it replaced."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from identdesk.cli import end_progress, progress
from media.faces import load_cascade
from media.faces_eval import CORPUS, evaluate

SETS = (
    ("live_720p", "live face, 720p desk frames (find_faces)"),
    ("portrait_720p_jpeg", "portrait, documents filmed 720p JPEG (portrait_face)"),
    ("portrait_540p_vp8", "portrait, documents filmed 960x540 through VP8"),
    ("corpus_find_faces", "specimen corpus images (find_faces)"),
    ("corpus_portrait", "specimen corpus scans as documents (portrait_face)"),
)


def register(commands: Any) -> None:
    ev = commands.group("eval", "evaluate the document tools")
    p = ev.add_parser(
        "faces",
        help="face finding: ms per image and faces found, old and new side by side",
    )
    p.add_argument("-n", "--scenes", type=int, default=12, help="rendered per set")
    p.add_argument("--seed", type=int, default=4000)
    p.add_argument(
        "--corpus",
        metavar="DIR",
        help=f"specimen images (default {CORPUS}, left out when absent)",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="leave out the previous window-by-window evaluation (it is slow)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_faces)


def cmd_eval_faces(args: argparse.Namespace) -> int:
    if load_cascade() is None:
        print(
            "identdesk: no LBP face cascade installed (Debian package opencv-data)",
            file=sys.stderr,
        )
        return 2
    if args.corpus is not None and not Path(args.corpus).is_dir():
        # a folder given on purpose that is not there is a mistake, not "absent"
        what = "not a folder" if Path(args.corpus).exists() else "no such folder"
        print(f"identdesk: --corpus {args.corpus!r}: {what}", file=sys.stderr)
        return 2
    out = evaluate(
        n=args.scenes,
        seed=args.seed,
        corpus=Path(args.corpus or CORPUS),
        baseline=not args.no_baseline,
        progress=progress,
    )
    end_progress()
    if args.json:
        print(json.dumps(out))
        return 0
    print_figures(out)
    return 0


def print_figures(out: dict[str, Any]) -> None:
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    for key, title in SETS:
        figs = out.get(key)
        if figs is None:
            print(f"{title}: corpus not present")
            continue
        print(title)
        for name in ("old", "new"):
            f = figs.get(name)
            if f is None:
                continue
            if not f["images"]:
                print(f"  {name}: no images (none in the corpus folder)")
                continue
            missed = ", ".join(f["missed"][:4]) + (
                " ..." if len(f["missed"]) > 4 else ""
            )
            print(
                f"  {name}: {f['images']:3d} images, face found {f['found']:3d} of "
                f"{f['with_face']:3d}, false {f['false']:2d}, ms median "
                f"{f['ms_median']:7.1f} p95 {f['ms_p95']:7.1f} (processor "
                f"{f['cpu_ms_median']:.1f})" + (f"; missed {missed}" if missed else "")
            )
        if "same_boxes" in figs:
            print(f"  same boxes old and new: {figs['same_boxes']} images")
