"""Commands for the document tools: `doc analyze`, `doc render` and `hologram
check` (their evaluations are in identdesk.cli_eval)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from identdesk.cli import InputError, TimesParser, guard, progress, write_image
from identdesk.cli_doc_io import (
    check_intervals,
    check_overlay,
    interval,
    intervals,
    mrz_reading,
    read_image,
    read_video,
    save_image,
)
from identdesk.cli_doc_render import add_render_parser, check_seed
from identdesk.cli_doc_video import Clock, VideoError, best_frame
from media.document import ASPECT, RECTIFIED_SIZE, detect_document, rectify
from media.faces import Face, find_faces, portrait_face
from media.frame_size import frame_problem
from media.hologram import check_hologram, check_tilt
from media.quality import assess, document_figures
from media.render import image_size

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi"}


def register(commands: Any) -> None:
    doc = commands.add("doc", "document tools: analyze a frame, render test videos")
    sub = doc.add_subparsers(
        dest="doc_command",
        metavar="SUBCOMMAND",
        required=True,
        parser_class=TimesParser,
    )
    p = sub.add_parser(
        "analyze",
        help="corners, quality, faces and MRZ of an image "
        "or of the best frame of a video",
    )
    p.add_argument("path", metavar="IMAGE_OR_VIDEO")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--save",
        metavar="DIR",
        help="write what was found here: rectified.png, portrait.png (the "
        "document's portrait) and live_face.png (the largest face outside the "
        "document)",
    )
    p.set_defaults(func=guard(cmd_analyze))

    add_render_parser(sub)

    holo = commands.add("hologram", "torch-driven hologram check")
    hsub = holo.add_subparsers(
        dest="hologram_command",
        metavar="SUBCOMMAND",
        required=True,
        parser_class=TimesParser,
    )
    p = hsub.add_parser("check", help="judge a video filmed under a torch pattern")
    p.add_argument("video", metavar="VIDEO")
    p.add_argument(
        "--window",
        required=True,
        help="START-END to analyse, in seconds from the video's first frame "
        "(whatever time its stream starts at); at most 60 s long, and past 10 s "
        "the frames are thinned to 15 a second at 640 px wide",
    )
    p.add_argument("--torch-on", help="lit intervals A-B[,C-D...], seconds as above")
    p.add_argument(
        "--tilt",
        action="store_true",
        help="torch off, the document tilted: judge colour changes with the angle",
    )
    p.add_argument("--document", choices=("id1", "td3"), default=None)
    p.add_argument("--overlay", metavar="PNG", help="write the response image here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=guard(cmd_hologram_check))


# --- doc analyze ---------------------------------------------------------------


# An image within 6 % of ID-1's or TD3's proportions may be a flat scan of the
# whole document (npa_2021.png 1.584, Canada.png 1.511; a 4:3 photo, 1.333, is not)
SCAN_TOLERANCE = math.log(1.06)
LYING_SCORE = 0.6
LYING_AREA = 0.2


def analyze_frame(frame: np.ndarray) -> dict[str, Any]:
    """Everything the agent sees about one frame, as JSON-ready values. Boxes
    and corners are in the input image's pixels, but `box_rectified`, which is
    in the rectified document image (`rectified_size`)."""
    out: dict[str, Any] = {"width": frame.shape[1], "height": frame.shape[0]}
    q = assess(frame)
    out["quality"] = q.to_json()
    det = q.detection
    faces = find_faces(frame)
    doc: np.ndarray | None
    scan = _is_scan(frame, det)
    if scan:
        # the image is the document itself: an outline found in it is an inner
        # frame or print, so the MRZ, portrait and figures come from all of it
        det = None
        mrz = mrz_reading(frame)
        kind = _scan_kind(frame, mrz)
        doc = cv2.resize(frame, RECTIFIED_SIZE[kind], interpolation=cv2.INTER_AREA)
        out["scan"] = kind
        out["quality"] = _scan_quality(doc, q.ms)
    else:
        doc = rectify(frame, det.corners, det.kind) if det else None
        mrz = mrz_reading(doc if doc is not None else frame)
    # a face on the document (every face of a flat scan) is not a live face
    on_doc = [scan or _inside(det, face) for face in faces]
    pairs = list(zip(faces, on_doc, strict=True))
    out["faces"] = [{**face.to_json(), "on_document": o} for face, o in pairs]
    out["live_faces"] = on_doc.count(False)
    out["document"] = det.to_json() if det else None
    portrait = portrait_face(doc) if doc is not None else None
    out["rectified_size"] = None if doc is None else [doc.shape[1], doc.shape[0]]
    out["portrait"] = None
    if portrait is not None and doc is not None:
        out["portrait"] = _portrait_json(portrait, _to_input(frame, det, doc))
    out["mrz"] = mrz
    live = [face.crop for face, o in pairs if not o]  # largest first
    out["_images"] = {
        "rectified": doc,
        "portrait": portrait.crop if portrait else None,
        "live_face": live[0] if live else None,
    }
    return out


def _inside(det: Any, face: Face) -> bool:
    """Whether the face's centre lies inside the document's outline."""
    if det is None:
        return False
    x, y, w, h = face.box
    quad = np.asarray(det.corners, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(quad, (x + w / 2, y + h / 2), False) >= 0


def _to_input(frame: np.ndarray, det: Any, doc: np.ndarray) -> np.ndarray:
    """The homography from the rectified document image to the input image:
    rectify's inverse, or a scale for a flat scan (det None)."""
    th, tw = doc.shape[:2]
    if det is None:
        return np.diag([frame.shape[1] / tw, frame.shape[0] / th, 1.0])
    rect = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
    return cv2.getPerspectiveTransform(rect, np.asarray(det.corners, np.float32))


def _portrait_json(portrait: Face, to_input: np.ndarray) -> dict[str, Any]:
    """The portrait's box in the input image (the bounding box of its four
    corners there, which perspective makes a quadrilateral) and as found in the
    rectified document image."""
    x, y, w, h = portrait.box
    rect = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    quad = cv2.perspectiveTransform(rect.reshape(-1, 1, 2), to_input).reshape(-1, 2)
    (x0, y0), (x1, y1) = np.floor(quad.min(0)), np.ceil(quad.max(0))
    return {
        **portrait.to_json(),
        "box": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
        "corners": [[round(float(a), 1), round(float(b), 1)] for a, b in quad],
        "box_rectified": list(portrait.box),
    }


def _is_scan(image: np.ndarray, det: Any) -> bool:
    """True when the image has a document's proportions and no outline in it is
    clearly a document lying inside the image: all corners in view, 60 % or more
    of the image, and either the image's proportions (within 4 %) or a margin of
    2 % on every side (a scan's inner frame reaches two opposite edges)."""
    h, w = image.shape[:2]
    ratio = w / h
    if w <= h or min(abs(math.log(ratio / a)) for a in ASPECT.values()) > (
        SCAN_TOLERANCE
    ):
        return False
    if det is None:
        return True
    c = np.asarray(det.corners, np.float64)
    if _on_border(c, w, h):
        return True
    margin = 0.02 * np.array([w, h])
    in_view = bool(((c >= -margin) & (c <= [w, h] + margin)).all())
    sides = np.linalg.norm(c - np.roll(c, -1, axis=0), axis=1)  # top, right, ...
    outline_ratio = (sides[0] + sides[2]) / max(sides[1] + sides[3], 1e-6)
    same_shape = abs(math.log(max(outline_ratio, 1e-6) / ratio)) < math.log(1.04)
    framed = bool((c.min(0) >= margin).all() and (c.max(0) <= [w, h] - margin).all())
    covers = det.area / (w * h) >= 0.6
    # a well-supported outline clear of the edges and of a card's size is a
    # card lying in a photo of 3:2 proportions (cards on desks: score 0.65-0.97,
    # 22-43 % of the image; inner frames of scans 0.31-0.42, or 14 % for a
    # drawn page's hologram patch)
    lying = framed and det.score >= LYING_SCORE and det.area / (w * h) >= LYING_AREA
    return not (lying or (in_view and covers and (same_shape or framed)))


# corners this near the image's edges (a share of its width and height) trace the
# image's own border: Japan.png's outline lies 2 px inside a 397x266 scan
BORDER = 0.03


def _on_border(corners: np.ndarray, w: int, h: int) -> bool:
    """True when each corner (TL, TR, BR, BL) lies within BORDER of its own two
    edges of the image."""
    size = np.array([w, h], np.float64)
    edges = np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) * size
    return bool((np.abs(corners - edges) <= BORDER * size).all())


def _scan_kind(image: np.ndarray, mrz: dict[str, Any] | None) -> str:
    """A scan's kind: from its MRZ's format when one was read (TD1 on ID-1
    cards, TD3 on passports), else the kind nearest the image's proportions."""
    fmt = (mrz or {}).get("format")
    if fmt == "TD1":
        return "id1"
    if fmt == "TD3":
        return "td3"
    ratio = image.shape[1] / image.shape[0]
    return min(ASPECT, key=lambda k: abs(math.log(ratio / ASPECT[k])))


def _scan_quality(doc: np.ndarray, ms: float) -> dict[str, Any]:
    """Figures of a flat scan: those of the document (it fills the image), no
    score of a live capture and no hint to show the document."""
    sharpness, brightness, glare = document_figures(doc)
    note = "a flat scan: the document fills the image"
    return {
        "found": True,
        "scan": True,
        "sharpness": round(sharpness, 1),
        "brightness": round(brightness, 1),
        "glare": round(glare, 4),
        "size": 1.0,
        "visible": 1.0,
        "score": None,
        "hints": [],
        "hints_en": [],
        "hints_de": [],
        "note": note,
        "ms": round(ms, 1),
    }


def cmd_analyze(args: argparse.Namespace) -> int:
    path = args.path
    if args.save and Path(args.save).exists() and not Path(args.save).is_dir():
        raise InputError(f"--save {args.save!r}: it is a file, not a folder")
    frame_info: dict[str, Any] = {}
    if Path(path).suffix.lower() in VIDEO_SUFFIXES:
        frame, frame_info = best_frame(path)
    else:
        frame = read_image(path)
    out = analyze_frame(frame)
    images = out.pop("_images")
    out = {"path": path, **frame_info, **out}
    problem = frame_problem(frame)
    if problem:
        # the tools find nothing in it; said once, not an error
        out["problem"] = problem
        print(f"identdesk: {path!r}: {problem}", file=sys.stderr)
    if args.save:
        saved = {k: v for k, v in images.items() if v is not None}
        for name, image in saved.items():
            save_image(Path(args.save), f"{name}.png", image)
        out["saved"] = [f"{name}.png" for name in saved]
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
        print(
            f"  no outline: the image is a flat scan of a whole {out['scan']} document"
        )
    else:
        print("  document not found")
    q = out["quality"]
    if q.get("scan"):
        print(
            f"  quality of the scan: sharpness {q['sharpness']} brightness "
            f"{q['brightness']} glare {q['glare']} ({q['note']}; no live-capture "
            "score)"
        )
    else:
        _print_quality(q)
    on_doc = len(out["faces"]) - out["live_faces"]
    print(
        f"  faces in frame: {len(out['faces'])} ({out['live_faces']} live, {on_doc} "
        f"on the document); portrait on document: "
        f"{'yes' if out['portrait'] else 'no'}"
    )
    if "saved" in out:
        print(f"  saved: {', '.join(out['saved']) or 'nothing found to save'}")
    m = out["mrz"]
    if m is None:
        print("  MRZ: reader not available")
    else:
        print(f"  MRZ: found {m['found']} valid {m['valid']} type {m.get('type')}")


def _print_quality(q: dict[str, Any]) -> None:
    print(
        f"  quality sharpness {q['sharpness']} brightness {q['brightness']} "
        f"glare {q['glare']} size {q['size']} score {q['score']} ({q['ms']} ms)"
    )
    if q["hints"]:
        print(f"  hints: {'; '.join(q['hints_en'])} / {'; '.join(q['hints_de'])}")


# --- hologram check --------------------------------------------------------------


# check_hologram needs 3 frames with and 3 without the torch
MIN_HOLOGRAM_FRAMES = 6
# The check holds the window's frames: 30 s of 720p took 2.7 GB. A window is at
# most MAX_WINDOW long; past FULL_WINDOW its frames are thinned (cli_doc_io
# THIN_FPS, THIN_WIDTH: 60 s then hold about 600 MB).
MAX_WINDOW, FULL_WINDOW = 60.0, 10.0


KIND_NAMES = {"id1": "an ID-1 card (id1)", "td3": "a TD3 passport page (td3)"}


def _seen_kind(frames: list[np.ndarray], samples: int = 5) -> str | None:
    """The kind the detector sees, unprompted, in most of a few frames spread
    over the video; None when it finds the document in fewer than three."""
    picks = np.linspace(0, len(frames) - 1, min(samples, len(frames))).astype(int)
    kinds = [det.kind for i in picks if (det := detect_document(frames[i]))]
    best = max(set(kinds), key=kinds.count, default=None)
    return best if best is not None and kinds.count(best) >= 3 else None


def _window_frames(
    args: argparse.Namespace, start: float, end: float
) -> tuple[list[np.ndarray], list[float]]:
    """The window's frames and times; a window that ends after the video does
    is refused with the time the video ends, counted from its first frame."""
    clock = Clock()
    long = end - start > FULL_WINDOW
    frames: list[np.ndarray] = []
    times: list[float] = []
    try:
        frames, times = read_video(
            args.video, start, end, MIN_HOLOGRAM_FRAMES, long, clock
        )
    except VideoError:
        raise
    except InputError:
        # too few frames in the window: said so, unless it lies past the end
        if not _past_end(clock, end):
            raise
    if _past_end(clock, end):
        starts = f", which its stream starts at {clock.first:.2f} s"
        raise InputError(
            f"--window {args.window}: the video ends at {clock.ends():.2f} s, "
            "before the window does (times count from the video's first frame"
            f"{starts if clock.first > 0.005 else ''})"
        )
    return frames, times


def _past_end(clock: Clock, end: float) -> bool:
    """Whether `end` lies past the video's last frame by over half a frame."""
    ends = clock.ends()
    return ends is not None and end > ends + 0.5 * clock.step


def cmd_hologram_check(args: argparse.Namespace) -> int:
    start, end = interval(args.window, "--window")
    if end - start > MAX_WINDOW:
        raise InputError(
            f"--window {args.window}: at most {MAX_WINDOW:g} s long (the check holds "
            "the window's frames)"
        )
    if args.tilt == (args.torch_on is not None):
        raise InputError("give either --torch-on A-B[,C-D...] or --tilt")
    torch_on = [] if args.tilt else intervals(args.torch_on, "--torch-on")
    check_intervals(torch_on, start, end, "--torch-on")
    if args.overlay:
        check_overlay(args.overlay)
    frames, times = _window_frames(args, start, end)
    if args.tilt:
        result = check_tilt(frames, times, kind=args.document)
    else:
        result = check_hologram(frames, times, torch_on, kind=args.document)
    seen = _seen_kind(frames) if args.document else None
    if seen is not None and seen != args.document:
        note = (
            f"the document looks like {KIND_NAMES[seen]}, not the --document "
            f"{args.document} given: the check looked at it as {args.document}"
        )
        result.reason = f"{result.reason}; {note}"
        print(f"identdesk: warning: {note}", file=sys.stderr)
    if args.overlay and result.overlay is not None:
        write_image(args.overlay, result.overlay)
    elif args.overlay:
        print(
            f"identdesk: no response image to write to {args.overlay!r}: "
            f"{result.reason}",
            file=sys.stderr,
        )
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


# _read_video for identdesk.cli_eval_videos, check_seed and progress for
# identdesk.cli_eval; image_size for the tests
_read_video = read_video
__all__ = [
    "register",
    "check_seed",
    "progress",
    "analyze_frame",
    "RECTIFIED_SIZE",
    "image_size",
    "read_image",
    "_read_video",
]
