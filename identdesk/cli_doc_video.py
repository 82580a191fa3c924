"""Videos for the document-tools commands: frames decoded one at a time, and the
best frame of a video for `doc analyze` chosen while they stream past."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from identdesk.cli import InputError
from identdesk.cli import file_problem as _file_problem
from media.quality import SHARP_MIN, Quality, assess
from media.render import _STILL_FORMATS  # FFmpeg's single-image demuxers


class VideoError(InputError):
    """A file that is not a video the tools can read; `reason` in plain words."""

    def __init__(self, path: str, reason: str, verb: str = "read") -> None:
        super().__init__(f"cannot {verb} {path!r}: {reason}")
        self.reason = reason


@dataclass
class Clock:
    """What video_frames saw of a video's times: where its stream starts, the
    time of the last frame decoded (from the first frame) and the step before
    it."""

    first: float = 0.0
    last: float | None = None
    step: float = 0.0

    def ends(self) -> float | None:
        """When the video ends, from its first frame, as far as it was read."""
        return None if self.last is None else self.last + self.step


def video_frames(
    path: str,
    start: float = 0.0,
    end: float = math.inf,
    clock: Clock | None = None,
) -> Generator[tuple[float, np.ndarray], None, None]:
    """Each decoded frame (BGR) with its time in seconds from the video's first
    frame (a clip cut from a longer one may start at 10 s), between start and
    end, one at a time; VideoError says in plain words why the file is not a
    video. `clock`, when given, follows the times of the frames decoded."""
    import av

    problem = _file_problem(path)
    if problem:
        raise VideoError(path, problem)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError:
        raise VideoError(path, "not a video") from None
    with container:
        if not container.streams.video:
            raise VideoError(path, "no video stream in it")
        if container.format.name in _STILL_FORMATS:
            still = f"a still image ({container.format.name}), not a video"
            raise VideoError(path, still)
        count, first = 0, None
        try:
            for frame in container.decode(container.streams.video[0]):
                t = float(frame.time) if frame.time is not None else count / 30.0
                first = t if first is None else first
                t -= first
                count += 1
                if clock is not None:
                    clock.first = first
                    clock.step = t - clock.last if clock.last is not None else 0.0
                    clock.last = t
                if t < start:
                    continue
                if t > end:
                    break
                yield t, frame.to_ndarray(format="bgr24")
        except av.error.FFmpegError:
            # a demuxer took it (raw H.264 bytes), but not one frame decodes
            damaged = f"damaged video after {count} frames"
            reason = damaged if count else "not a video (no frame of it decodes)"
            raise VideoError(path, reason) from None


def video_problem(path: str) -> str | None:
    """Why `path` is not a video, in the words `doc analyze` uses ("not a
    video", "a still image (png_pipe), not a video", ...); None when its first
    frame decodes."""
    frames = video_frames(path)
    try:
        if next(frames, None) is None:
            return "no frames in it"
    except VideoError as exc:
        return exc.reason
    finally:
        frames.close()
    return None


@dataclass
class Pick:
    """A frame that may be the best one: its index, time and quality."""

    index: int
    time: float
    frame: np.ndarray
    quality: Quality
    motion_known: bool

    def key(self) -> tuple[bool, bool, float]:
        # among frames that show the document, one whose motion was measured
        # beats one whose motion is unknown (the first frame, or one after a
        # frame without the document); then the score with its sharpness
        # uncapped: capped, the first of many sharp enough frames won on a
        # thousandth of motion
        q = self.quality
        sharper = max(1.0, q.sharpness / (3 * SHARP_MIN))
        return (q.found, self.motion_known, q.score * sharper)


def best_frame(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The best frame of a video for a snapshot and where it lies; holds only
    that frame and the one being judged, never the whole video."""
    best: Pick | None = None
    previous = None
    count = 0
    for count, (t, frame) in enumerate(video_frames(path), 1):
        q = assess(frame, previous)
        pick = Pick(count - 1, t, frame, q, previous is not None)
        previous = q.detection
        if best is None or pick.key() > best.key():
            best = pick
    if best is None:
        raise VideoError(path, "no frames in it", "use")
    info = {"frame": best.index, "time": round(best.time, 3), "frames": count}
    return best.frame, info
