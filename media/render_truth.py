"""The truth file beside a rendered video: how it was rendered and where the
document's corners truly lie in each frame, so that the document tools can be
measured on videos rendered elsewhere (`identdesk eval videos`).

The file holds no personal data: render settings, the source image's base name
(a specimen) or "drawn", and per frame its time, whether the torch was on and the
four corners TL, TR, BR, BL in frame pixels.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from media.render import ATTACKS, SceneRenderer, lit_at, write_video

VERSION = 1
SUFFIX = ".truth.json"
KINDS = ("id1", "td3")


@dataclass(frozen=True)
class TruthFrame:
    """One rendered frame: its index, time in seconds, torch on, true corners."""

    index: int
    t: float
    lit: bool
    corners: np.ndarray  # (4, 2) float64: TL, TR, BR, BL, may lie outside the frame

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "t": self.t,
            "lit": self.lit,
            # float32 from the renderer, written exactly (a double holds it)
            "corners": [[float(x), float(y)] for x, y in self.corners],
        }


@dataclass
class RenderTruth:
    """How a video was rendered, and its frames' truth."""

    kind: str
    attack: str
    fps: float
    width: int
    height: int
    seconds: float
    seed: int
    partial: bool
    torch_on: list[tuple[float, float]]
    source: str  # the source image's base name, or "drawn"
    frames: list[TruthFrame] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "identdesk render truth",
            "version": VERSION,
            "kind": self.kind,
            "attack": self.attack,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "seconds": self.seconds,
            "seed": self.seed,
            "partial": self.partial,
            "torch_on": [[a, b] for a, b in self.torch_on],
            "source": self.source,
            "frames": [f.to_json() for f in self.frames],
        }

    @classmethod
    def of(
        cls,
        scene: SceneRenderer,
        fps: float,
        seconds: float,
        torch_on: list[tuple[float, float]],
        partial: bool,
        source: str,
    ) -> RenderTruth:
        """The truth of a render of `scene`, its frames still to come."""
        return cls(
            kind=scene.doc.kind,
            attack=scene.attack,
            fps=fps,
            width=scene.w,
            height=scene.h,
            seconds=seconds,
            seed=scene.seed,
            partial=partial,
            torch_on=list(torch_on),
            source=source,
        )

    @property
    def lit_and_unlit(self) -> bool:
        """True when some frames were lit and some were not (a torch check can run)."""
        lit = {f.lit for f in self.frames}
        return lit == {True, False}

    def mismatch(self, frames: int, width: int, height: int) -> str | None:
        """Why a decoded video is not the one this truth describes; None if it is."""
        if (width, height) != (self.width, self.height):
            return (
                f"the video is {width}x{height}, the truth file says "
                f"{self.width}x{self.height}"
            )
        if frames != len(self.frames):
            return f"the video has {frames} frames, the truth file {len(self.frames)}"
        return None


def truth_path(video: str | Path) -> Path:
    """The truth file of a video: card.mp4 -> card.truth.json."""
    return Path(video).with_suffix(SUFFIX)


def scene_frames(
    scene: SceneRenderer,
    truth: RenderTruth,
    count: int,
    shown: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """The scene's frames one by one (for a writer that streams them), each
    one's truth appended to `truth.frames`; `shown(i)` is called before frame i."""
    for i in range(count):
        if shown is not None:
            shown(i)
        t = i / truth.fps
        lit = lit_at(t, truth.torch_on)
        frame, corners = scene.frame(t, lit)
        truth.frames.append(TruthFrame(i, t, lit, corners.astype(np.float64)))
        yield frame


def write_video_and_truth(
    video: Path,
    scene: SceneRenderer,
    truth: RenderTruth,
    count: int,
    shown: Callable[[int], None] | None = None,
) -> None:
    """Render `count` frames of the scene into `video` and write its truth file
    beside it; on any failure neither file is left (nor an older one of them)."""
    try:
        write_video(video, scene_frames(scene, truth, count, shown), truth.fps)
        write_truth(truth_path(video), truth)
    except BaseException:
        for path in (video, truth_path(video)):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a folder, or not removable: not ours to remove
        raise


def write_truth(path: str | Path, truth: RenderTruth) -> None:
    """Write the truth file atomically: a reader sees the old file or the whole
    new one, never a part (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(truth.to_json(), f, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- reading ----------------------------------------------------------------------


def read_truth(path: str | Path) -> RenderTruth:
    """The truth file at `path`; OSError when it cannot be opened, ValueError
    saying in plain words what is wrong with its contents."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError("not JSON (cut short or not a truth file)") from None
    if not isinstance(data, dict):
        raise ValueError("not a truth file: the JSON is not an object")
    if data.get("version") != VERSION:
        raise ValueError(
            f"version {data.get('version')!r}, this identdesk reads version {VERSION}"
        )
    truth = RenderTruth(
        kind=_choice(data, "kind", KINDS),
        attack=_choice(data, "attack", ATTACKS),
        fps=_number(data, "fps", 0.0),
        width=_whole(data, "width", 1),
        height=_whole(data, "height", 1),
        seconds=_number(data, "seconds", 0.0),
        seed=_whole(data, "seed", 0),
        partial=_flag(data, "partial"),
        torch_on=_intervals(data.get("torch_on")),
        source=_text(data, "source"),
    )
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ValueError("'frames': give a list of one frame or more")
    truth.frames = [_frame(i, f) for i, f in enumerate(frames)]
    return truth


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in allowed:
        raise ValueError(f"{key!r} {value!r}: give one of {', '.join(allowed)}")
    return str(value)


def _finite(value: Any) -> float | None:
    """`value` as a finite number (JSON's true and false are not), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _number(data: dict[str, Any], key: str, above: float) -> float:
    value = _finite(data.get(key))
    if value is None or value <= above:
        raise ValueError(f"{key!r} {data.get(key)!r}: give a number above {above:g}")
    return value


def _whole(data: dict[str, Any], key: str, least: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{key!r} {value!r}: give a whole number from {least}")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} {value!r}: give true or false")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f'{key!r} {value!r}: give a file name or "drawn"')
    return value


def _intervals(value: Any) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise ValueError(f"'torch_on' {value!r}: give a list of [start, end] pairs")
    out = []
    for pair in value:
        nums = _floats(pair, 2)
        if nums is None or not 0 <= nums[0] < nums[1]:
            raise ValueError(f"'torch_on' {pair!r}: give [start, end] seconds from 0")
        out.append((nums[0], nums[1]))
    return out


def _floats(value: Any, n: int) -> list[float] | None:
    """`value` as n finite numbers, or None."""
    if not isinstance(value, list) or len(value) != n:
        return None
    nums = [_finite(v) for v in value]
    return None if None in nums else [v for v in nums if v is not None]


def _frame(i: int, value: Any) -> TruthFrame:
    where = f"frame {i}"
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not an object")
    if value.get("index") != i:
        raise ValueError(f"{where}: index {value.get('index')!r}, expected {i}")
    t = _finite(value.get("t"))
    if t is None:
        raise ValueError(f"{where}: 't' {value.get('t')!r}: give its time in seconds")
    if not isinstance(value.get("lit"), bool):
        raise ValueError(f"{where}: 'lit' {value.get('lit')!r}: give true or false")
    corners = value.get("corners")
    rows = [_floats(c, 2) for c in corners] if isinstance(corners, list) else []
    if len(rows) != 4 or any(r is None for r in rows):
        raise ValueError(f"{where}: 'corners': give four [x, y] pairs")
    return TruthFrame(i, t, value["lit"], np.array(rows, np.float64))
