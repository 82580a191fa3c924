"""Commands for the document tools: `doc analyze`, `doc render` and `hologram
check` (their evaluations are in identdesk.cli_eval)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from media import render
from media.document import ASPECT, RECTIFIED_SIZE, rectify
from media.faces import find_faces, portrait_face
from media.hologram import check_hologram, check_tilt, random_torch_pattern
from media.quality import assess, best_index

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi"}


class InputError(Exception):
    """A file that cannot be read; the command exits 2 with this message."""


def register(commands: Any) -> None:
    doc = commands.add("doc", "document tools: analyze a frame, render test videos")
    sub = doc.add_subparsers(dest="doc_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "analyze",
        help="corners, quality, faces and MRZ of an image "
        "or of the best frame of a video",
    )
    p.add_argument("path", metavar="IMAGE_OR_VIDEO")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", metavar="DIR", help="write rectified image and crops here")
    p.set_defaults(func=guard(cmd_analyze))

    p = sub.add_parser("render", help="render a synthetic phone-camera video")
    p.add_argument("out", metavar="OUT", help="output video (.mp4, .mkv or .webm)")
    p.add_argument("--document", choices=("id1", "td3"), default="id1")
    p.add_argument("--image", help="render this document image instead of a drawn one")
    p.add_argument("--attack", choices=render.ATTACKS, default="none")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--resolution", choices=("720p", "1080p"), default="720p")
    p.add_argument(
        "--torch-on",
        default=None,
        help="lit intervals A-B,C-D in seconds (default: a random pattern)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partial", action="store_true", help="one side out of frame")
    p.set_defaults(func=guard(cmd_render))

    holo = commands.add("hologram", "torch-driven hologram check")
    hsub = holo.add_subparsers(
        dest="hologram_command", metavar="SUBCOMMAND", required=True
    )
    p = hsub.add_parser("check", help="judge a video filmed under a torch pattern")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument("--window", required=True, help="START-END seconds to analyse")
    p.add_argument("--torch-on", help="lit intervals A-B[,C-D...]")
    p.add_argument(
        "--tilt",
        action="store_true",
        help="torch off, the document tilted: judge colour changes with the angle",
    )
    p.add_argument("--document", choices=("id1", "td3"), default=None)
    p.add_argument("--overlay", metavar="PNG", help="write the response image here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guard(cmd_hologram_check))


def guard(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InputError as exc:
            print(f"identdesk: {exc}", file=sys.stderr)
            return 2

    return run


def progress(text: str) -> None:
    print(f"\r{text}", end="", file=sys.stderr, flush=True)


def read_image(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise InputError(f"cannot read {path!r}: no such file")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read {path!r}: not an image")
    return img


def _read_video(
    path: str, start: float = 0.0, end: float = float("inf")
) -> tuple[list[np.ndarray], list[float]]:
    if not Path(path).is_file():
        raise InputError(f"cannot read {path!r}: no such file")
    try:
        frames, times = render.read_video(path, start, end)
    except Exception as exc:  # PyAV raises many kinds for a broken file
        raise InputError(f"cannot read {path!r}: not a video ({exc})") from None
    if not frames:
        raise InputError(f"cannot read {path!r}: no frames between {start} and {end} s")
    return frames, times


def _interval(text: str) -> tuple[float, float]:
    try:
        ((a, b),) = render.parse_intervals(text)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return a, b


# --- doc analyze ---------------------------------------------------------------


def analyze_frame(frame: np.ndarray) -> dict[str, Any]:
    """Everything the agent sees about one frame, as JSON-ready values."""
    out: dict[str, Any] = {"width": frame.shape[1], "height": frame.shape[0]}
    q = assess(frame)
    out["quality"] = q.to_json()
    det = q.detection
    out["document"] = det.to_json() if det else None
    out["faces"] = [f.to_json() for f in find_faces(frame)]
    doc = rectify(frame, det.corners, det.kind) if det else None
    scan = _scan_kind(frame) if det is None else None
    if scan:
        # a scan or crop that is the document itself: no outline to find
        doc = cv2.resize(frame, RECTIFIED_SIZE[scan], interpolation=cv2.INTER_AREA)
        out["scan"] = scan
    portrait = portrait_face(doc) if doc is not None else None
    out["portrait"] = portrait.to_json() if portrait else None
    out["mrz"] = _read_mrz(doc if doc is not None else frame)
    out["_rectified"] = doc
    return out


def _scan_kind(image: np.ndarray) -> str | None:
    """'id1' or 'td3' when the image has a document's proportions (within 4 %)."""
    h, w = image.shape[:2]
    ratio = max(w, h) / min(w, h)
    for kind, aspect in ASPECT.items():
        if abs(np.log(ratio / aspect)) < 0.04 and w > h:
            return kind
    return None


def _read_mrz(image: np.ndarray) -> dict[str, Any] | None:
    try:
        from media.mrz_reader import read_mrz
    except ImportError:
        return None
    return read_mrz(image).to_dict()


def cmd_analyze(args: argparse.Namespace) -> int:
    path = args.path
    frame_info: dict[str, Any] = {}
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        frames, times = _read_video(path)
        quals, prev = [], None
        for f in frames:
            q = assess(f, prev)
            prev = q.detection
            quals.append(q)
        k = best_index(quals)
        k = 0 if k is None else k
        frame = frames[k]
        frame_info = {"frame": k, "time": round(times[k], 3), "frames": len(frames)}
    else:
        frame = read_image(path)
    out = analyze_frame(frame)
    doc = out.pop("_rectified")
    out = {"path": path, **frame_info, **out}
    if args.save and doc is not None:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(Path(args.save) / "rectified.png"), doc)
    if args.json:
        print(json.dumps(out))
        return 0
    _print_analysis(out)
    return 0


def _print_analysis(out: dict[str, Any]) -> None:
    print(
        f"{out['path']}: {out['width']}x{out['height']}"
        + (f", best frame {out['frame']} at {out['time']} s" if "frame" in out else "")
    )
    d = out["document"]
    if d:
        print(f"  document {d['kind']} score {d['score']} visible {d['visible']}")
        print(f"  corners {d['corners']}")
    elif out.get("scan"):
        print(f"  no outline: the image has {out['scan']} proportions, read as a scan")
    else:
        print("  document not found")
    q = out["quality"]
    print(
        f"  quality sharpness {q['sharpness']} brightness {q['brightness']} "
        f"glare {q['glare']} size {q['size']} score {q['score']} ({q['ms']} ms)"
    )
    if q["hints"]:
        print(f"  hints: {'; '.join(q['hints_en'])} / {'; '.join(q['hints_de'])}")
    print(
        f"  faces in frame: {len(out['faces'])}; portrait on document: "
        f"{'yes' if out['portrait'] else 'no'}"
    )
    m = out["mrz"]
    if m is None:
        print("  MRZ: reader not available")
    else:
        print(f"  MRZ: found {m['found']} valid {m['valid']} type {m.get('type')}")


# --- doc render ----------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    width, height = (1280, 720) if args.resolution == "720p" else (1920, 1080)
    out_dir = Path(args.out).resolve().parent
    if not out_dir.is_dir():
        raise InputError(f"no such folder {str(out_dir)!r} for {args.out!r}")
    if args.image:
        doc = render.document_from_image(read_image(args.image), args.document)
    else:
        doc = render.draw_document(args.document, seed=args.seed)
    if args.torch_on:
        try:
            torch_on = render.parse_intervals(args.torch_on)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    else:
        try:
            torch_on = random_torch_pattern(args.seconds)
        except ValueError as exc:
            raise InputError(f"--seconds: {exc}") from None
    video = render.render_video(
        doc,
        seconds=args.seconds,
        fps=args.fps,
        width=width,
        height=height,
        attack=args.attack,
        torch_on=torch_on,
        seed=args.seed,
        partial=args.partial,
    )
    try:
        render.write_video(args.out, video.frames, video.fps)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    on = ",".join(f"{a:g}-{b:g}" for a, b in torch_on)
    print(
        f"wrote {args.out}: {len(video.frames)} frames {width}x{height} "
        f"{args.attack} torch-on {on}"
    )
    return 0


# --- hologram check --------------------------------------------------------------


def cmd_hologram_check(args: argparse.Namespace) -> int:
    start, end = _interval(args.window)
    if args.tilt == bool(args.torch_on):
        raise InputError("give either --torch-on A-B[,C-D...] or --tilt")
    try:
        torch_on = render.parse_intervals(args.torch_on or "")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    frames, times = _read_video(args.video, start, end)
    if args.tilt:
        result = check_tilt(frames, times, kind=args.document)
    else:
        result = check_hologram(frames, times, torch_on, kind=args.document)
    if args.overlay and result.overlay is not None:
        cv2.imwrite(args.overlay, result.overlay)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"verdict {result.verdict}")
    print(f"score {result.score:.3f}")
    print(f"reason {result.reason}")
    for key, value in result.figures.items():
        print(f"  {key} {value}")
    print("interval        torch frames brightness hue_change highlight")
    for iv in result.intervals:
        print(
            f"{iv.start:6.2f}-{iv.end:<6.2f}  {'on ' if iv.torch else 'off'}   "
            f"{iv.frames:5d} {iv.brightness:10.1f} {iv.hue_change:10.4f} "
            f"{iv.highlight:9.4f}"
        )
    return 0


__all__ = ["register", "analyze_frame", "RECTIFIED_SIZE"]
