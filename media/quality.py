"""Capture quality of a frame and short hints for the user (German and English).

Pure functions on BGR uint8 arrays plus a small, locked window for picking the best
frame of the last seconds; safe to use from worker threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from media.document import Detection, rectify, track_document
from media.frame_size import analysable

# thresholds measured on rendered 720p scenes and the specimen corpus
SHARP_MIN = 150.0  # variance of the Laplacian on the 256 px wide document
DARK_MAX = 70.0  # mean grey level of the document
BRIGHT_MIN = 225.0
GLARE_MAX = 0.015  # share of clipped, colourless document pixels
MOTION_MAX = 0.012  # corner travel per frame, share of the frame diagonal
SIZE_MIN = 0.2  # document area / frame area
SIZE_MAX = 0.9
VISIBLE_MIN = 0.98

HINTS = {
    "no_document": ("Ausweis ins Bild halten", "show your ID document to the camera"),
    "partly_outside": (
        "Ausweis ganz ins Bild halten",
        "keep the whole document in view",
    ),
    "move_closer": ("näher herangehen", "move closer"),
    "move_back": ("etwas weiter weg halten", "move back a little"),
    "hold_still": ("bitte ruhig halten", "hold still"),
    "blurry": (
        "Bild unscharf: kurz ruhig halten",
        "image blurred: hold still a moment",
    ),
    "too_dark": ("mehr Licht, bitte", "more light, please"),
    "too_bright": (
        "zu hell: aus dem direkten Licht",
        "too bright: move out of direct light",
    ),
    "glare": (
        "Ausweis kippen, um die Spiegelung zu entfernen",
        "tilt to remove the reflection",
    ),
}


@dataclass
class Quality:
    """Figures for one frame and the hints they lead to (most urgent first)."""

    found: bool
    sharpness: float = 0.0
    brightness: float = 0.0
    glare: float = 0.0
    motion: float = 0.0
    size: float = 0.0
    visible: float = 0.0
    hints: list[str] = field(default_factory=list)
    detection: Detection | None = None
    ms: float = 0.0

    @property
    def score(self) -> float:
        """Higher is a better snapshot; 0 without a document."""
        if not self.found:
            return 0.0
        s = min(1.0, self.sharpness / (3 * SHARP_MIN))
        s *= 1.0 - min(1.0, self.glare / (3 * GLARE_MAX))
        s *= 1.0 - min(1.0, self.motion / (3 * MOTION_MAX))
        s *= min(1.0, self.size / SIZE_MIN) * self.visible
        s *= 1.0 if DARK_MAX <= self.brightness <= BRIGHT_MIN else 0.5
        return round(float(s), 4)

    def messages(self, lang: str = "de") -> list[str]:
        k = 0 if lang == "de" else 1
        return [HINTS[h][k] for h in self.hints]

    def to_json(self) -> dict:
        return {
            "found": self.found,
            "sharpness": round(self.sharpness, 1),
            "brightness": round(self.brightness, 1),
            "glare": round(self.glare, 4),
            "motion": round(self.motion, 4),
            "size": round(self.size, 3),
            "visible": round(self.visible, 3),
            "score": self.score,
            "hints": self.hints,
            "hints_de": self.messages("de"),
            "hints_en": self.messages("en"),
            "ms": round(self.ms, 1),
        }


def document_figures(doc: np.ndarray) -> tuple[float, float, float]:
    """Sharpness, mean brightness and glare share of a rectified document image."""
    small = cv2.resize(
        doc, (256, int(256 * doc.shape[0] / doc.shape[1])), interpolation=cv2.INTER_AREA
    )
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    glare = float(np.mean((hsv[..., 2] >= 250) & (hsv[..., 1] < 40)))
    return sharp, float(gray.mean()), glare


def assess(
    frame: np.ndarray,
    previous: Detection | None = None,
    detection: Detection | None = None,
    kind: str | None = None,
) -> Quality:
    """Judge one frame; pass the previous frame's detection to measure motion and
    to follow the document from there (much cheaper than a search)."""
    t0 = time.perf_counter()
    if not analysable(frame):
        return Quality(False, hints=["no_document"])
    det = detection or track_document(frame, previous, kind)
    if det is None:
        return Quality(
            False, hints=["no_document"], ms=(time.perf_counter() - t0) * 1000
        )
    h, w = frame.shape[:2]
    doc = rectify(frame, det.corners, det.kind, (320, int(320 / 1.586)))
    sharp, bright, glare = document_figures(doc)
    motion = 0.0
    if previous is not None:
        travel = np.linalg.norm(det.corners - previous.corners, axis=1).max()
        motion = float(travel / np.hypot(w, h))
    size = det.area / (w * h)
    q = Quality(True, sharp, bright, glare, motion, size, det.visible, detection=det)
    q.hints = _hints(q)
    q.ms = (time.perf_counter() - t0) * 1000
    return q


def _hints(q: Quality) -> list[str]:
    hints = []
    if q.visible < VISIBLE_MIN:
        hints.append("partly_outside")
    if q.size < SIZE_MIN:
        hints.append("move_closer")
    elif q.size > SIZE_MAX:
        hints.append("move_back")
    if q.motion > MOTION_MAX:
        hints.append("hold_still")
    elif q.sharpness < SHARP_MIN:
        hints.append("blurry")
    if q.brightness < DARK_MAX:
        hints.append("too_dark")
    elif q.brightness > BRIGHT_MIN:
        hints.append("too_bright")
    if q.glare > GLARE_MAX:
        hints.append("glare")
    return hints


def best_index(qualities: list[Quality]) -> int | None:
    """Index of the best snapshot candidate, or None when no frame shows a document."""
    if not qualities:
        return None
    k = int(np.argmax([q.score for q in qualities]))
    return k if qualities[k].score > 0 else None


class FrameWindow:
    """The frames of the last `seconds` with their quality; thread-safe."""

    def __init__(self, seconds: float = 3.0, kind: str | None = None) -> None:
        self.seconds = seconds
        self.kind = kind  # "id1" or "td3" when the checklist says which document
        self._items: deque[tuple[float, np.ndarray, Quality]] = deque()
        self._lock = threading.Lock()
        self._last: Detection | None = None

    def add(self, t: float, frame: np.ndarray) -> Quality:
        with self._lock:
            previous = self._last
        q = assess(frame, previous, kind=self.kind)
        with self._lock:
            self._last = q.detection
            self._items.append((t, frame, q))
            newest = max(item[0] for item in self._items)
            while self._items and self._items[0][0] < newest - self.seconds:
                self._items.popleft()
            # frames from several threads may arrive out of order
            self._items = deque(i for i in self._items if i[0] >= newest - self.seconds)
        return q

    def best(self) -> tuple[float, np.ndarray, Quality] | None:
        with self._lock:
            items = list(self._items)
        k = best_index([q for _, _, q in items])
        return None if k is None else items[k]
