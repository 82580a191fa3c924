"""Reading and writing files for the document-tools commands: images, videos,
time intervals and output paths, each refused with one plain line."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from identdesk.cli import InputError, write_image, write_problem, write_reason
from identdesk.cli import file_problem as _file_problem
from identdesk.cli_doc_video import Clock, video_frames
from media import render
from media.render import image_size, image_truncated

# The document tools work on 720p to 1080p frames and a 12-megapixel phone photo
# is plenty; decoding a 20000 x 20000 PNG of 425 KB took 2.5 GB and 14 s.
MAX_IMAGE_PIXELS = 50_000_000


def pixel_limit() -> int:
    """The most pixels an image may have: MAX_IMAGE_PIXELS, or OpenCV's own
    limit when OPENCV_IO_MAX_IMAGE_PIXELS sets a lower one."""
    try:
        opencv = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
    except ValueError:
        opencv = 1 << 30
    return min(opencv, MAX_IMAGE_PIXELS)


def header_size(path: str) -> tuple[int, int] | None:
    """Width and height from the file's header, before decoding: our own PNG and
    JPEG parser, else libav's probe (BMP, TIFF, WebP)."""
    size = image_size(path)
    if size is not None:
        return size
    import av

    try:
        with av.open(path) as container:
            streams = container.streams.video
            ctx = streams[0].codec_context if streams else None
            return (ctx.width, ctx.height) if ctx is not None and ctx.width else None
    except av.error.FFmpegError:
        return None


def read_image(path: str) -> np.ndarray:
    """The image at `path` (BGR); InputError says in plain words why not."""
    problem = _file_problem(path)
    if problem:
        raise InputError(f"cannot read {path!r}: {problem}")
    if image_truncated(path):
        # checked before decoding: libpng and libjpeg would warn on stderr and
        # return the part they could read
        raise InputError(f"cannot read {path!r}: the image is truncated")
    size, limit = header_size(path), pixel_limit()
    if size and size[0] * size[1] > limit:
        raise InputError(
            f"cannot read {path!r}: image too large: {size[0]} x {size[1]}, "
            f"at most {limit} pixels"
        )
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    except cv2.error:
        # a format whose header image_size does not parse, over the limit
        raise InputError(
            f"cannot read {path!r}: image too large, at most {limit} pixels"
        ) from None
    if img is None:
        raise InputError(f"cannot read {path!r}: not an image")
    return img


def mrz_reading(image: np.ndarray) -> dict[str, Any] | None:
    """The MRZ reader's result for an image as JSON-ready values; None when the
    reader is not installed."""
    try:
        from media.mrz_reader import read_mrz
    except ImportError:
        return None
    return read_mrz(image).to_dict()


# frames kept of a long window (read_video's `thin`): as the live check keeps
# them (10 a second at 640 px), a little denser
THIN_FPS, THIN_WIDTH = 15.0, 640


def read_video(
    path: str,
    start: float = 0.0,
    end: float = float("inf"),
    min_frames: int = 1,
    thin: bool = False,
    clock: Clock | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """The frames between start and end seconds from the video's first frame,
    and their times; at least `min_frames` of them. With `thin`, at most
    THIN_FPS frames a second, scaled to THIN_WIDTH when wider. `clock` follows
    the times decoded (video_frames)."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    for t, frame in video_frames(path, start, end, clock):
        if thin and times and t < times[-1] + 0.9 / THIN_FPS:  # ms-rounded times
            continue
        h, w = frame.shape[:2]
        if thin and w > THIN_WIDTH:
            size = (THIN_WIDTH, max(1, round(h * THIN_WIDTH / w)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        frames.append(frame)
        times.append(t)
    if len(frames) < min_frames:
        got = f"{len(frames)}" if frames else "none"
        raise InputError(
            f"cannot use {path!r}: needs at least {min_frames} frames between "
            f"{start:g} and {end:g} s, found {got}"
        )
    return frames, times


def check_intervals(
    intervals: list[tuple[float, float]], lo: float, hi: float, name: str
) -> None:
    """Intervals must be finite, in lo..hi, in order and not overlapping."""
    last = lo
    for a, b in sorted(intervals):
        text = f"{name} {a:g}-{b:g}"
        if not (math.isfinite(a) and math.isfinite(b)):
            raise InputError(f"{text}: give finite seconds")
        if a < lo or b > hi:
            raise InputError(f"{text}: outside {lo:g}-{hi:g} s")
        if a < last:
            raise InputError(f"{text}: overlaps the interval before it")
        last = b


def intervals(text: str, name: str) -> list[tuple[float, float]]:
    """The intervals in `text`, at least one, sorted by start."""
    parts = [part.strip() for part in text.split(",")]
    if any(parts) and not all(parts):
        raise InputError(f"{name} {text!r}: an empty interval between commas")
    for part in parts:
        if math.isinf(_start(part)):
            # parse_intervals would call an END below an infinite START misplaced
            raise InputError(f"{name} {part}: give finite seconds")
    try:
        found = render.parse_intervals(text)
    except ValueError as exc:
        raise InputError(f"{name}: {exc}") from None
    if not found:
        raise InputError(f"{name} {text!r}: give at least one interval START-END")
    return sorted(found)


def _start(part: str) -> float:
    """The START of `part` as a number, 0 when it is not one."""
    try:
        return float(part.split("-")[0])
    except ValueError:
        return 0.0


def interval(text: str, name: str) -> tuple[float, float]:
    found = intervals(text, name)
    if len(found) != 1:
        raise InputError(f"{name} {text!r}: give one interval START-END")
    ((a, b),) = found
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0:
        raise InputError(f"{name} {text!r}: give finite seconds from 0")
    return a, b


def save_image(folder: Path, name: str, image: np.ndarray) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = write_reason(exc, folder)
        raise InputError(f"cannot write to {str(folder)!r}: {reason}") from None
    write_image(folder / name, image)


def check_overlay(path: str) -> None:
    if Path(path).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"--overlay {path!r}: give a .png or .jpg file")
    problem = write_problem(path)
    if problem:
        raise InputError(f"cannot write {path!r}: {problem}")
    # a file made and removed beside it, before the analysis (18 s on a long
    # video): /proc and read-only mounts pass the access check above
    try:
        with tempfile.NamedTemporaryFile(
            dir=Path(path).absolute().parent, prefix=".identdesk-probe-"
        ):
            pass
    except OSError as exc:
        reason = write_reason(exc, path)
        raise InputError(f"cannot write {path!r}: {reason}") from None
