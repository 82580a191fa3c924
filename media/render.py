"""A phone-camera video renderer for tests and QA: a document (see `media.specimen`)
filmed with perspective motion, tilt, blur, noise, compression and the torch's
response of a hologram patch, genuine or as an attack (flat copy, screen replay).
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from media.specimen import (
    ATTACKS,
    ID1_MM,
    ID1_PX,
    OCRB_PATHS,
    TD3_MM,
    TD3_PX,
    SpecimenDocument,
    document_from_image,
    draw_document,
    draw_portrait,
    specimen_mrz,
)

__all__ = [
    "ATTACKS",
    "ID1_MM",
    "ID1_PX",
    "OCRB_PATHS",
    "TD3_MM",
    "TD3_PX",
    "RenderedVideo",
    "SceneRenderer",
    "SpecimenDocument",
    "document_from_image",
    "draw_document",
    "draw_portrait",
    "image_size",
    "image_truncated",
    "lit_at",
    "parse_intervals",
    "read_video",
    "render_video",
    "VIDEO_CODECS",
    "specimen_mrz",
    "write_video",
]


# --- scenes ------------------------------------------------------------------


@dataclass
class RenderedVideo:
    """Frames (BGR uint8), their times, which were lit, true corners per frame."""

    frames: list[np.ndarray]
    times: list[float]
    lit: list[bool]
    corners: list[np.ndarray]  # (4, 2) float32: TL, TR, BR, BL of the document
    fps: float
    attack: str
    kind: str


def _busy_background(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A desk-like clutter: wood or cloth texture with shapes, lines and print."""
    base = rng.integers(40, 170, 3).astype(np.float32)
    noise: np.ndarray = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = np.sin(np.linspace(0, rng.uniform(20, 60), w, dtype=np.float32))[None, :]
    tex = base[None, None, :] * (1 + 0.12 * noise[..., None] + 0.06 * grain[..., None])
    bg = np.clip(tex, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(10, 25))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 4)
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if shape == 0:
            q = (
                p[0] + int(rng.integers(-300, 300)),
                p[1] + int(rng.integers(-200, 200)),
            )
            cv2.rectangle(bg, p, q, color, -1)
        elif shape == 1:
            cv2.circle(bg, p, int(rng.integers(10, 120)), color, -1, cv2.LINE_AA)
        elif shape == 2:
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(bg, p, q, color, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            cv2.putText(
                bg,
                "LOREM IPSUM 42",
                p,
                cv2.FONT_HERSHEY_SIMPLEX,
                float(rng.uniform(0.6, 2.0)),
                color,
                2,
                cv2.LINE_AA,
            )
    return cv2.GaussianBlur(bg, (0, 0), 1.2)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class _Pose:
    yaw: float
    pitch: float
    roll: float
    t: np.ndarray  # mm, camera frame


def _project(
    pose: _Pose,
    size_mm: tuple[float, float],
    f: float,
    cx: float,
    cy: float,
    pts_mm: np.ndarray,
) -> np.ndarray:
    rot = _rotation(pose.yaw, pose.pitch, pose.roll)
    centred = pts_mm - np.array([size_mm[0] / 2, size_mm[1] / 2, 0])
    cam = centred @ rot.T + pose.t
    return np.stack([f * cam[:, 0] / cam[:, 2] + cx, f * cam[:, 1] / cam[:, 2] + cy], 1)


def _glare_point(pose: _Pose, size_mm: tuple[float, float]) -> tuple[float, float]:
    """Where the torch (beside the lens) mirrors into the lens, in document mm."""
    rot = _rotation(pose.yaw, pose.pitch, pose.roll)
    normal = rot[:, 2]
    # the foot of the perpendicular from the camera onto the document plane
    foot = normal * float(normal @ pose.t)
    local = rot.T @ (foot - pose.t)
    return local[0] + size_mm[0] / 2, local[1] + size_mm[1] / 2


def _hologram_layer(
    doc: SpecimenDocument,
    img: np.ndarray,
    pose: _Pose,
    lit: bool,
    t: float,
    glare_mm: tuple[float, float],
) -> None:
    """Diffractive response: hue depends on angle and light; a specular spot moves
    with the tilt, strong only under the torch."""
    px_per_mm = img.shape[1] / doc.size_mm[0]
    for x, y, w, h in doc.holograms:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = pose.yaw * 2.2 + pose.pitch * 1.7
        hue = (xx / w * 70 + yy / h * 40 + math.degrees(angle) * 3.0 + 30) % 180
        sat = np.full_like(hue, 230 if lit else 60)
        val = np.full_like(hue, 245 if lit else 200)
        hsv = np.stack([hue, sat, val], -1).astype(np.uint8)
        rainbow = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32)
        roi = img[y : y + h, x : x + w].astype(np.float32)
        mix = 0.75 if lit else 0.3
        out = roi * (1 - mix) + rainbow * mix

        # specular spot: follows the tilt (and, under the torch, the mirror point)
        sx = w * (0.5 + 1.2 * math.sin(pose.yaw * 3))
        sy = h * (0.5 + 1.2 * math.sin(pose.pitch * 3))
        if lit:
            sx = 0.5 * sx + 0.5 * (glare_mm[0] * px_per_mm - x)
            sy = 0.5 * sy + 0.5 * (glare_mm[1] * px_per_mm - y)
        spot = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * (0.12 * w) ** 2))
        out += spot[..., None] * (160 if lit else 25)
        img[y : y + h, x : x + w] = np.clip(out, 0, 255).astype(np.uint8)


class SceneRenderer:
    """Renders one phone-camera scene of a document, frame by frame."""

    def __init__(
        self,
        doc: SpecimenDocument,
        *,
        width: int = 1280,
        height: int = 720,
        seed: int = 0,
        attack: str = "none",
        partial: bool = False,
        motion: float = 1.0,
    ) -> None:
        if attack not in ATTACKS:
            raise ValueError(f"unknown attack {attack!r}: use one of {ATTACKS}")
        self.doc, self.w, self.h, self.attack = doc, width, height, attack
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        rng = self.rng
        self.f = 0.8 * width  # about 65 degrees horizontal field of view
        fill = rng.uniform(0.45, 0.8)
        self.z = self.f * doc.size_mm[0] / (fill * width)
        self.motion = motion
        self.phase = rng.uniform(0, 2 * np.pi, 6)
        self.base = rng.uniform(-1, 1, 6) * np.array([0.25, 0.25, 0.3, 8, 6, 0.05])
        if partial:
            # push one short side 5-15 % of the width out of the frame
            frame_half = width / 2 * self.z / self.f
            out = (
                frame_half
                - doc.size_mm[0] / 2
                + rng.uniform(0.05, 0.15) * doc.size_mm[0]
            )
            self.base[3] = rng.choice([-1, 1]) * out
        self.bg = _busy_background(width + 200, height + 200, rng)
        self.ambient = rng.uniform(0.7, 0.95)
        self.blur = rng.uniform(0.3, 1.3)
        self.noise = rng.uniform(1.5, 5.0)
        self.jpeg = int(rng.integers(55, 90))
        self.flat_copy = self._flat_copy() if attack == "flat" else None
        # a screen replays a recording with its own, different torch pattern
        self.replay_shift = rng.uniform(0.3, 1.7)
        if not partial:
            self._keep_in_frame()

    def _keep_in_frame(self, margin: float = 0.02) -> None:
        """Move the camera back until the whole document stays in view over the
        first ten seconds of motion (a user who follows the guidance)."""
        wmm, hmm = self.doc.size_mm
        pts = np.array([[0, 0, 0], [wmm, 0, 0], [wmm, hmm, 0], [0, hmm, 0]])
        lo = np.array([margin * self.w, margin * self.h])
        hi = np.array([(1 - margin) * self.w, (1 - margin) * self.h])
        for _ in range(30):
            quads = [
                _project(
                    self.pose(t), self.doc.size_mm, self.f, self.w / 2, self.h / 2, pts
                )
                for t in np.linspace(0, 10, 41)
            ]
            q = np.concatenate(quads)
            if (q >= lo).all() and (q <= hi).all():
                return
            self.z *= 1.06
            self.base[3:5] *= 0.9

    def _flat_copy(self) -> np.ndarray:
        """A colour print of the document photographed under the torch once: the
        hologram's colours are frozen into ink."""
        img = self.doc.image.copy()
        pose = _Pose(0.1, -0.05, 0, np.array([0, 0, self.z]))
        _hologram_layer(self.doc, img, pose, True, 0.0, (-999, -999))
        return (img.astype(np.float32) * 0.9).astype(np.uint8)

    def pose(self, t: float) -> _Pose:
        ph, b, m = self.phase, self.base, self.motion
        yaw = b[0] + m * 0.18 * math.sin(1.3 * t + ph[0])
        pitch = b[1] + m * 0.15 * math.sin(1.1 * t + ph[1])
        roll = b[2] + m * 0.06 * math.sin(0.7 * t + ph[2])
        tx = b[3] + m * 6 * math.sin(0.9 * t + ph[3])
        ty = b[4] + m * 5 * math.sin(0.8 * t + ph[4])
        tz = self.z * (1 + b[5] + m * 0.05 * math.sin(0.6 * t + ph[5]))
        return _Pose(yaw, pitch, roll, np.array([tx, ty, tz]))

    def _doc_appearance(self, pose: _Pose, lit: bool, t: float) -> np.ndarray:
        doc = self.doc
        size = doc.size_mm
        if self.flat_copy is not None:
            img = self.flat_copy.astype(np.float32)
        else:
            img = doc.image.copy()
            glare = _glare_point(pose, size)
            _hologram_layer(doc, img, pose, lit, t, glare)
            img = img.astype(np.float32)
        gain = self.ambient * (1.2 if lit else 1.0)
        img *= gain
        if lit and self.attack != "screen":
            h, w = img.shape[:2]
            gx, gy = _glare_point(pose, size)
            px = w / size[0]
            yy, xx = np.mgrid[0:h:4, 0:w:4].astype(np.float32)
            d2 = (xx - gx * px) ** 2 + (yy - gy * px) ** 2
            if self.attack == "flat":
                # matte paper: broad diffuse brightening, no specular spot
                spot = 40 * np.exp(-d2 / (2 * (0.6 * w) ** 2))
            else:
                spot = 110 * np.exp(-d2 / (2 * (0.07 * w) ** 2))
            img += cv2.resize(spot, (w, h))[..., None]
        return np.clip(img, 0, 255).astype(np.uint8)

    def _screen_effects(self, img: np.ndarray, t: float) -> np.ndarray:
        h, w = img.shape[:2]
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        moire = 0.08 * np.sin(xx * 0.9 + yy * 0.35) + 0.05 * np.sin(yy * 1.7)
        band = 0.12 * np.sin(yy / h * 2 * np.pi * 1.5 - t * 9.0)
        out = img.astype(np.float32) * (1 + moire + band)[..., None]
        out = out * np.array([1.05, 1.0, 0.9])  # cold backlight
        return np.clip(out, 0, 255).astype(np.uint8)

    def frame(self, t: float, lit: bool) -> tuple[np.ndarray, np.ndarray]:
        """One camera frame at time t and the document's true corners in it."""
        pose = self.pose(t)
        if self.attack == "screen":
            # replayed footage: its lighting followed someone else's pattern
            replay_lit = math.sin(t * 2.3 + self.replay_shift * 5) > 0.2
            doc_img = self._doc_appearance(pose, replay_lit, t)
            doc_img = self._screen_effects(doc_img, t)
        else:
            doc_img = self._doc_appearance(pose, lit, t)
        dh, dw = doc_img.shape[:2]
        wmm, hmm = self.doc.size_mm
        corners_mm = np.array([[0, 0, 0], [wmm, 0, 0], [wmm, hmm, 0], [0, hmm, 0]])
        corners = _project(
            pose, self.doc.size_mm, self.f, self.w / 2, self.h / 2, corners_mm
        ).astype(np.float32)
        src = np.array([[0, 0], [dw, 0], [dw, dh], [0, dh]], np.float32)
        hom = cv2.getPerspectiveTransform(src, corners)

        # background moves with the camera; the torch lights the far desk less
        ox = int(100 + np.clip(pose.t[0] * 2, -100, 100))
        oy = int(100 + np.clip(pose.t[1] * 2, -100, 100))
        bg = self.bg[oy : oy + self.h, ox : ox + self.w].astype(np.float32)
        bg *= self.ambient * (1.08 if lit and self.attack != "screen" else 1.0)
        frame: np.ndarray = np.clip(bg, 0, 255).astype(np.uint8)
        cv2.warpPerspective(
            doc_img,
            hom,
            (self.w, self.h),
            dst=frame,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )

        # camera: defocus, sensor noise, compression
        frame = cv2.GaussianBlur(frame, (0, 0), self.blur)
        # seeded per scene and time, so that a rendered frame is reproducible
        rng = np.random.default_rng([self.seed, int(round(t * 1000)), int(lit)])
        noise = rng.standard_normal(frame.shape, dtype=np.float32) * self.noise
        frame = cv2.add(frame, noise, dtype=cv2.CV_8U)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg])
        frame = cast(np.ndarray, cv2.imdecode(buf, cv2.IMREAD_COLOR))
        return frame, corners


def parse_intervals(text: str) -> list[tuple[float, float]]:
    """'0.5-1.2,2-3' -> [(0.5, 1.2), (2.0, 3.0)]; ValueError quotes bad input."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("-"):
            raise ValueError(f"bad interval {part!r}: times start at 0 s")
        try:
            a, b = (float(v) for v in part.split("-"))
        except ValueError:
            raise ValueError(f"bad interval {part!r}: expected START-END") from None
        if b <= a:
            raise ValueError(f"bad interval {part!r}: END must be after START")
        if a < 0:
            raise ValueError(f"bad interval {part!r}: times start at 0 s")
        out.append((a, b))
    return out


def seeded_torch_pattern(seconds: float, seed: int) -> list[tuple[float, float]]:
    """A torch pattern for a render, the same for the same seed: by the rules of
    media.hologram.random_torch_pattern (off for the first 0.5 s, steps of 0.4 to
    1 s, two or more lit steps, lit for 25-70 % of the time), which draws a live
    challenge from `secrets` so that no one can predict it."""
    lead, shortest, longest = 0.5, 400, 1000  # steps in ms
    if seconds < lead + 2 * (shortest + longest) / 1000:
        raise ValueError(
            f"a torch pattern needs at least {lead + 2.8:g} s "
            f"(two on and two off steps), got {seconds:g} s"
        )
    rng = np.random.default_rng([seed, 0x7043])  # apart from the scene's stream
    while True:
        steps = rng.integers(shortest, longest, size=int(seconds / 0.4) + 2,
                             endpoint=True) / 1000  # fmt: skip
        ends = np.minimum(lead + np.cumsum(steps), seconds)
        starts = np.concatenate([[lead], ends[:-1]])
        first_lit = int(rng.integers(2))
        lit = [(round(float(a), 3), round(float(b), 3))
               for k, (a, b) in enumerate(zip(starts, ends, strict=True))
               if (k + first_lit) % 2 and a < seconds - 0.05]  # fmt: skip
        on_time = sum(b - a for a, b in lit)
        if len(lit) >= 2 and 0.25 * seconds <= on_time <= 0.7 * seconds:
            return lit


def lit_at(t: float, torch_on: Sequence[tuple[float, float]]) -> bool:
    return any(a <= t < b for a, b in torch_on)


def render_video(
    doc: SpecimenDocument,
    *,
    seconds: float = 4.0,
    fps: float = 30.0,
    width: int = 1280,
    height: int = 720,
    attack: str = "none",
    torch_on: Sequence[tuple[float, float]] = (),
    seed: int = 0,
    partial: bool = False,
    motion: float = 1.0,
) -> RenderedVideo:
    """Render a phone-camera video of the document; torch_on lists lit intervals."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be a length above 0, got {seconds!r}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be above 0, got {fps!r}")
    if int(round(seconds * fps)) < 1:
        raise ValueError(f"{seconds:g} s at {fps:g} fps is not one frame")
    scene = SceneRenderer(
        doc,
        width=width,
        height=height,
        seed=seed,
        attack=attack,
        partial=partial,
        motion=motion,
    )
    frames, times, lit, corners = [], [], [], []
    for i in range(int(round(seconds * fps))):
        t = i / fps
        on = lit_at(t, torch_on)
        frame, quad = scene.frame(t, on)
        frames.append(frame)
        times.append(t)
        lit.append(on)
        corners.append(quad)
    return RenderedVideo(frames, times, lit, corners, fps, attack, doc.kind)


VIDEO_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
}


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> None:
    """Write BGR frames to mp4 / mkv (H.264) or webm (VP9) with PyAV, each as it
    comes: a generator of frames is never held in memory as a whole."""
    import av

    path = Path(path)
    codec, pix_fmt = VIDEO_CODECS.get(path.suffix.lower(), (None, None))
    if codec is None:
        raise ValueError(f"unsupported video file {path.name!r}: use .mp4, .mkv, .webm")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be above 0, got {fps!r}")
    stream_frames = iter(frames)
    first = next(stream_frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path.name!r}")
    h, w = first.shape[:2]
    # bitexact: no random Matroska UIDs, so one seed gives one file
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        stream = cast(
            "av.VideoStream",
            container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001)),
        )
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        else:
            stream.options = {
                "crf": "32",
                "b:v": "0",
                "deadline": "realtime",
                "cpu-used": "8",
            }
        for img in itertools.chain([first], stream_frames):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(
    path: str | Path, start: float = 0.0, end: float = math.inf
) -> tuple[list[np.ndarray], list[float]]:
    """Decode frames (BGR) with their times in seconds between start and end;
    ValueError says in plain words why a file is not a video."""
    import av

    frames, times = [], []
    try:
        container = av.open(str(path))
    except av.error.FFmpegError:
        raise ValueError("not a video") from None
    with container:
        if not container.streams.video:
            raise ValueError("no video stream in it")
        if container.format.name in _STILL_FORMATS:
            raise ValueError(f"a still image ({container.format.name}), not a video")
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(times) / 30.0
                if t < start:
                    continue
                if t > end:
                    break
                frames.append(frame.to_ndarray(format="bgr24"))
                times.append(t)
        except av.error.FFmpegError:
            raise ValueError(f"damaged video after {len(times)} frames") from None
    return frames, times


# FFmpeg's demuxers for single images (`ffmpeg -formats`): image2 and *_pipe
_STILL_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe",
                  "tiff_pipe"}  # fmt: skip


# --- image files -------------------------------------------------------------

# JPEG start-of-frame markers (ITU T.81 table B.1): C0-CF but DHT, JPG and DAC
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(path: str | Path) -> tuple[int, int] | None:
    """Width and height from a PNG or JPEG header, without decoding the image."""
    with open(path, "rb") as f:
        head = f.read(24)
        if head.startswith(_PNG_SIGNATURE) and len(head) == 24:
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if not head.startswith(b"\xff\xd8"):
            return None
        f.seek(2)
        while (marker := f.read(2))[:1] == b"\xff" and len(marker) == 2:
            size = f.read(2)
            if len(size) < 2:
                return None
            if marker[1] in _SOF:
                h, w = struct.unpack(">xHH", f.read(5))
                return w, h
            f.seek(struct.unpack(">H", size)[0] - 2, 1)
    return None


# how far from the end a PNG's IEND chunk or a JPEG's end-of-image marker may lie
# (a corpus passport carries 1.4 kB after its end-of-image marker)
_TAIL = 4096


def image_truncated(path: str | Path) -> bool:
    """True when a PNG lacks its IEND chunk or a JPEG its end-of-image marker
    (FF D9) near the end: the file was cut short. Other formats: False."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        f.seek(max(0, f.tell() - _TAIL))
        tail = f.read()
    if head.startswith(_PNG_SIGNATURE):
        return b"IEND" not in tail
    if head.startswith(b"\xff\xd8"):
        # entropy-coded data never holds FF D9 (an FF there is followed by 00 or
        # a restart marker), so the marker in the tail is the image's end
        return b"\xff\xd9" not in tail
    return False
