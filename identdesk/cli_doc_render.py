"""`identdesk doc render`: phone-camera test videos of a document, with a truth
file beside each."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from identdesk.cli import InputError, end_progress, guard, progress, write_reason
from identdesk.cli import write_problem as _write_problem
from identdesk.cli_doc_io import check_intervals, intervals, mrz_reading, read_image
from media import render
from media.document import ASPECT
from media.frame_size import frame_problem
from media.render_truth import RenderTruth, truth_path, write_video_and_truth

# a render longer or faster than this is a mistake: 10 minutes at 60 fps is 36000
# frames, about 20 minutes of rendering on one core
MAX_SECONDS, MAX_FPS = 600.0, 60.0


def add_render_parser(sub: Any) -> None:
    p = sub.add_parser("render", help="render a synthetic phone-camera video")
    p.add_argument("out", metavar="OUT", help="output video (.mp4, .mkv or .webm)")
    p.add_argument(
        "--document",
        choices=("id1", "td3"),
        default=None,
        help="document kind (default: id1; with --image the kind the image's MRZ "
        "names, TD1 id1 and TD3 td3, else the kind nearest its proportions)",
    )
    p.add_argument(
        "--image",
        help="render this document image instead of a drawn one (at least 32 px "
        "on a side and at most 8 times as long as wide)",
    )
    p.add_argument("--attack", choices=render.ATTACKS, default="none")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--resolution", choices=("720p", "1080p"), default="720p")
    p.add_argument(
        "--torch-on",
        default=None,
        help="lit intervals A-B,C-D in seconds (default: a pattern drawn from "
        "--seed, 3.3 s or longer)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the scene, its motion and the default torch pattern: one seed gives "
        "the same video file and truth file (default 0)",
    )
    p.add_argument("--partial", action="store_true", help="one side out of frame")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT and its truth file when they exist (refused otherwise)",
    )
    p.set_defaults(func=guard(cmd_render))


def _check_length(seconds: float, fps: float) -> None:
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise InputError(
            f"--seconds {seconds:g}: give a length above 0 and at most "
            f"{MAX_SECONDS:g} s (10 minutes)"
        )
    if not (math.isfinite(fps) and 1 <= fps <= MAX_FPS):
        raise InputError(f"--fps {fps:g}: give 1 to {MAX_FPS:g} frames per second")


def _check_outputs(args: argparse.Namespace) -> Path:
    """OUT and its truth file can be written: a folder is named as one, an
    existing file is replaced only with --overwrite (as the exports do)."""
    from identdesk.cli_export import refuse_existing

    out = Path(args.out)
    truth_file = truth_path(out)
    for path, name in ((out, args.out), (truth_file, str(truth_file))):
        problem = _write_problem(path)
        if problem:
            raise InputError(f"cannot write {name!r}: {problem}")
    if out.suffix.lower() not in render.VIDEO_CODECS:
        raise InputError(f"unsupported video file {out.name!r}: use .mp4, .mkv, .webm")
    refuse_existing([out, truth_file], args.overwrite)
    return out


def cmd_render(args: argparse.Namespace) -> int:
    width, height = (1280, 720) if args.resolution == "720p" else (1920, 1080)
    _check_length(args.seconds, args.fps)
    check_seed(args.seed)
    out = _check_outputs(args)
    if args.image:
        image = read_image(args.image)
        problem = frame_problem(image)
        if problem:
            raise InputError(f"--image {args.image!r}: {problem}")
        doc = render.document_from_image(image, _image_kind(image, args.document))
    else:
        doc = render.draw_document(args.document or "id1", seed=args.seed)
    if args.torch_on:
        torch_on = intervals(args.torch_on, "--torch-on")
        check_intervals(torch_on, 0.0, args.seconds, "--torch-on")
    else:
        try:
            torch_on = render.seeded_torch_pattern(args.seconds, args.seed)
        except ValueError as exc:
            raise InputError(f"--seconds: {exc}") from None
    scene = render.SceneRenderer(
        doc,
        width=width,
        height=height,
        attack=args.attack,
        seed=args.seed,
        partial=args.partial,
    )
    source = Path(args.image).name if args.image else "drawn"
    truth = RenderTruth.of(
        scene, args.fps, args.seconds, torch_on, args.partial, source
    )
    count = int(round(args.seconds * args.fps))
    try:
        write_video_and_truth(out, scene, truth, count, _shown(count))
    except OSError as exc:  # av.error.PermissionError and the like are OSErrors
        reason = write_reason(exc, out)
        raise InputError(f"cannot write {args.out!r}: {reason}") from None
    end_progress()
    on = ",".join(f"{a:g}-{b:g}" for a, b in torch_on)
    print(
        f"wrote {args.out}: {count} frames {width}x{height} {args.attack} "
        f"torch-on {on}, and its truth file {truth_path(out)}"
    )
    return 0


def check_seed(seed: int) -> None:
    """Seeds feed numpy's generators, which take integers from 0."""
    if seed < 0:
        raise InputError(f"--seed {seed}: give 0 or more")


def _shown(count: int) -> Callable[[int], None]:
    """Shows frame i of a long render as the progress line."""

    def show(i: int) -> None:
        if count > 100 and i % 25 == 0:
            progress(f"doc render: frame {i + 1}/{count}")

    return show


def _image_kind(image: np.ndarray, given: str | None) -> str:
    """The document kind to render an image as: the one given (with a warning when
    the image's proportions differ from it by more than 8 %), else the one its
    MRZ's format names (TD1: id1, TD3: td3), else the one whose proportions are
    nearer the image's."""
    h, w = image.shape[:2]
    ratio = max(w, h) / min(w, h)
    off = {k: abs(math.log(ratio / a)) for k, a in ASPECT.items()}
    names = {"id1": "ID-1", "td3": "TD3"}
    fmt = (mrz_reading(image) or {}).get("format") if given is None else None
    if fmt in ("TD1", "TD3"):
        kind = "id1" if fmt == "TD1" else "td3"
        print(
            f"identdesk: no --document given: the image's MRZ is {fmt}, rendering "
            f"it as {kind}",
            file=sys.stderr,
        )
        return kind
    if given is None:
        kind = min(off, key=lambda k: off[k])
        print(
            f"identdesk: no --document given: the image's proportions {ratio:.3f} "
            f"are nearest {names[kind]} ({ASPECT[kind]:.3f}), rendering it as {kind}",
            file=sys.stderr,
        )
        return kind
    if off[given] > math.log(1.08):
        print(
            f"identdesk: warning: the image's proportions {ratio:.3f} differ from "
            f"{names[given]}'s ({ASPECT[given]:.3f}) by more than 8 %: it will be "
            "stretched",
            file=sys.stderr,
        )
    return given
