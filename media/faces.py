"""Find faces: the live face in the camera frame and the portrait on the document.

The model is OpenCV's LBP frontal-face cascade, a data file from a package
(`cv2.data.haarcascades` on OpenCV 4 wheels, Debian's `opencv-data` elsewhere);
nothing is downloaded. OpenCV 5 dropped the CascadeClassifier class;
`media.faces_cascade` evaluates the cascade with numpy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from media.faces_cascade import LbpCascade
from media.frame_size import analysable

logger = logging.getLogger(__name__)

CASCADE_NAME = "lbpcascade_frontalface_improved.xml"
# The portrait search runs on the rectified document scaled to this height, for
# face boxes of this share of the document's height: on the specimen corpus they
# are 0.12-0.29 (ID cards, passports, visas), on drawn cards about 0.19. A finer
# scale step than the live search's gives blurred portraits the grouping's three
# hits: 112 drawn cards filmed at 960x540 through VP8 (250 and 500 kbit/s) and
# rectified from the found outline, 111 found, 103 by the whole-page search.
PORTRAIT_HEIGHT = 400
PORTRAIT_SIZES = (0.11, 0.38)
PORTRAIT_SCALE_STEP = 1.1


def _search_dirs() -> list[Path]:
    dirs = []
    data = getattr(cv2, "data", None)
    for attr in ("lbpcascades", "haarcascades"):
        base = getattr(data, attr, None) if data else None
        if base:
            dirs += [Path(base), Path(base).parent / "lbpcascades"]
    dirs += [
        Path("/usr/share/opencv4/lbpcascades"),
        Path("/usr/share/opencv/lbpcascades"),
    ]
    return dirs


def cascade_path() -> Path | None:
    """Where the packaged LBP face cascade is, or None when no package ships it."""
    for d in _search_dirs():
        if (d / CASCADE_NAME).exists():
            return d / CASCADE_NAME
    return None


_lock = threading.Lock()
_cascade: LbpCascade | None = None


def load_cascade() -> LbpCascade | None:
    global _cascade
    with _lock:
        if _cascade is None:
            path = cascade_path()
            if path is None:
                logger.warning(
                    "x face cascade %s not found (install opencv-data)", CASCADE_NAME
                )
                return None
            _cascade = LbpCascade(path)
        return _cascade


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the input image
    crop: np.ndarray

    def to_json(self) -> dict:
        return {"box": list(self.box)}


def _crop(
    img: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.35
) -> np.ndarray:
    x, y, w, h = box
    mx, my = int(w * margin), int(h * margin)
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(img.shape[1], x + w + mx), min(img.shape[0], y + h + int(1.3 * my))
    return img[y0:y1, x0:x1].copy()


def work_gray(image: np.ndarray, work_width: int) -> tuple[np.ndarray, float]:
    """The equalised grayscale image the cascade searches, at most work_width wide,
    and its scale."""
    h, w = image.shape[:2]
    scale = min(1.0, work_width / w)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if scale < 1:
        gray = cv2.resize(
            gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA
        )
    return cv2.equalizeHist(gray), scale


def _faces_from_boxes(
    image: np.ndarray, boxes: list[tuple[int, ...]], scale: float
) -> list[Face]:
    """Boxes found at `scale` as faces of `image`."""
    out = []
    for bx, by, bw, bh in boxes:
        box = (int(bx / scale), int(by / scale), int(bw / scale), int(bh / scale))
        out.append(Face(box, _crop(image, box)))
    return out


Detect = Callable[[LbpCascade, np.ndarray], list[tuple[int, ...]]]


def find_faces_with(image: np.ndarray, detect: Detect, work_width: int) -> list[Face]:
    """The faces `detect` finds in the work image of a BGR image, largest first."""
    cascade = load_cascade()
    if cascade is None or not analysable(image):
        return []
    gray, scale = work_gray(image, work_width)
    faces = _faces_from_boxes(image, detect(cascade, gray), scale)
    faces.sort(key=lambda f: -f.box[2] * f.box[3])
    return faces


def find_faces(
    image: np.ndarray, *, work_width: int = 480, min_size: int = 36
) -> list[Face]:
    """Faces in a BGR image, largest first, each with a crop for side-by-side view."""
    return find_faces_with(
        image, lambda cascade, gray: cascade.detect(gray, min_size=min_size), work_width
    )


def portrait_face(rectified: np.ndarray) -> Face | None:
    """The holder's portrait on a rectified document: the best supported face of
    the expected size, on the left half first (where ICAO 9303 puts the portrait,
    zone V, of TD1 fronts and TD3 data pages), else anywhere on the document."""
    cascade = load_cascade()
    if cascade is None or not analysable(rectified):
        return None
    h, w = rectified.shape[:2]
    scale = PORTRAIT_HEIGHT / h
    gray = cv2.cvtColor(rectified, cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(
        gray, (max(1, round(w * scale)), PORTRAIT_HEIGHT), interpolation=cv2.INTER_AREA
    )
    lo, hi = PORTRAIT_SIZES
    for share in (0.5, 1.0):
        region = cv2.equalizeHist(gray[:, : round(gray.shape[1] * share)])
        boxes = cascade.detect(
            region,
            scale_step=PORTRAIT_SCALE_STEP,
            min_size=lo * PORTRAIT_HEIGHT,
            max_size=hi * PORTRAIT_HEIGHT,
        )
        if boxes:
            return _faces_from_boxes(rectified, boxes[:1], scale)[0]
    return None
