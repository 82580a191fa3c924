"""Find faces: the live face in the camera frame and the portrait on the document.

The model is OpenCV's LBP frontal-face cascade, a data file from a package
(`cv2.data.haarcascades` on OpenCV 4 wheels, Debian's `opencv-data` elsewhere);
nothing is downloaded. OpenCV 5 dropped the CascadeClassifier class, so this module
evaluates the cascade itself with numpy: integral image, 3x3-block LBP codes, boosted
stumps with early rejection.
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np

logger = logging.getLogger(__name__)

CASCADE_NAME = "lbpcascade_frontalface_improved.xml"


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


@dataclass(frozen=True)
class _Stage:
    threshold: float
    features: np.ndarray  # (n,) feature index
    subsets: np.ndarray  # (n, 8) uint32 bit sets over the 256 LBP codes
    leaves: np.ndarray  # (n, 2): value when the code is in the set, when not


class LbpCascade:
    """A boosted LBP cascade read from OpenCV's XML format; immutable once loaded."""

    def __init__(self, path: Path) -> None:
        root = ET.parse(path).getroot().find("cascade")
        if root is None or root.findtext("featureType", "").strip() != "LBP":
            raise ValueError(f"{path}: not an LBP cascade")
        # a malformed file fails here with a TypeError or AttributeError on None
        self.width = int(cast(str, root.findtext("width")))
        self.height = int(cast(str, root.findtext("height")))
        self.rects = np.array(
            [[int(v) for v in cast(str, r.text).split()] for r in root.iter("rect")],
            np.int32,
        )
        self.stages: list[_Stage] = []
        for st in cast(ET.Element, root.find("stages")):
            feats: list[int] = []
            subsets: list[list[int]] = []
            leaves: list[list[float]] = []
            for weak in cast(ET.Element, st.find("weakClassifiers")):
                nodes = [
                    int(v) for v in cast(str, weak.findtext("internalNodes")).split()
                ]
                feats.append(nodes[2])
                subsets.append([v & 0xFFFFFFFF for v in nodes[3:11]])
                leaves.append(
                    [float(v) for v in cast(str, weak.findtext("leafValues")).split()]
                )
            self.stages.append(
                _Stage(
                    float(cast(str, st.findtext("stageThreshold"))),
                    np.array(feats, np.int32),
                    np.array(subsets, np.uint32),
                    np.array(leaves, np.float64),
                )
            )

    def _lbp(
        self, ii: np.ndarray, px: np.ndarray, py: np.ndarray, f: int
    ) -> np.ndarray:
        x, y, w, h = self.rects[f]
        xs = px[:, None] + x + np.arange(4) * w  # (n, 4)
        ys = py[:, None] + y + np.arange(4) * h
        p = ii[ys[:, :, None], xs[:, None, :]].astype(np.int64)  # (n, 4 rows, 4 cols)
        blocks = p[:, 1:, 1:] - p[:, :-1, 1:] - p[:, 1:, :-1] + p[:, :-1, :-1]
        c = blocks[:, 1, 1]
        # neighbours clockwise from top-left, most significant bit first
        order = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))
        code = np.zeros(len(px), np.int64)
        for bit, (r, k) in zip((128, 64, 32, 16, 8, 4, 2, 1), order, strict=False):
            code |= np.where(blocks[:, r, k] >= c, bit, 0)
        return code

    def evaluate(self, ii: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Indices of the windows (top-left px, py) that pass every stage."""
        alive = np.arange(len(px))
        for st in self.stages:
            total = np.zeros(len(alive))
            for f, subset, leaf in zip(
                st.features, st.subsets, st.leaves, strict=False
            ):
                code = self._lbp(ii, px[alive], py[alive], int(f))
                inset = (subset[code >> 5] >> (code & 31).astype(np.uint32)) & 1
                total += np.where(inset == 1, leaf[0], leaf[1])
            alive = alive[total >= st.threshold]
            if not len(alive):
                break
        return alive

    def detect(
        self,
        gray: np.ndarray,
        *,
        scale_step: float = 1.15,
        min_size: int = 40,
        min_neighbors: int = 3,
    ) -> list[tuple[int, ...]]:
        """Face boxes (x, y, w, h) in a grayscale image."""
        h, w = gray.shape
        found = []
        factor = max(1.0, min_size / self.width)
        while w / factor >= self.width and h / factor >= self.height:
            sw, sh = int(w / factor), int(h / factor)
            img = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
            ii = cv2.integral(img)
            step = 1 if factor > 2 else 2
            ys, xs = np.mgrid[0 : sh - self.height : step, 0 : sw - self.width : step]
            px, py = xs.ravel(), ys.ravel()
            for k in self.evaluate(ii, px, py):
                found.append((px[k] * factor, py[k] * factor, self.width * factor))
            factor *= scale_step
        return _group(found, min_neighbors)


def _group(
    found: list[tuple[float, float, float]], min_neighbors: int
) -> list[tuple[int, ...]]:
    """Merge overlapping hits; keep clusters with enough members."""
    clusters: list[list[tuple[float, float, float]]] = []
    for x, y, s in found:
        for cl in clusters:
            cx, cy, cs = np.mean(cl, axis=0)
            if abs(x - cx) < 0.3 * cs and abs(y - cy) < 0.3 * cs and 0.7 < s / cs < 1.4:
                cl.append((x, y, s))
                break
        else:
            clusters.append([(x, y, s)])
    out = []
    for cl in clusters:
        if len(cl) >= min_neighbors:
            x, y, s = np.mean(cl, axis=0)
            out.append((int(x), int(y), int(s), int(s), len(cl)))
    out.sort(key=lambda b: -b[4])
    # drop boxes inside a stronger one
    kept: list[tuple[int, ...]] = []
    for b in out:
        if not any(_overlap(b, k) > 0.3 for k in kept):
            kept.append(b)
    return [b[:4] for b in kept]


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / min(a[2] * a[3], b[2] * b[3])


_lock = threading.Lock()
_cascade: LbpCascade | None = None


def _load() -> LbpCascade | None:
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


def find_faces(
    image: np.ndarray, *, work_width: int = 480, min_size: int = 36
) -> list[Face]:
    """Faces in a BGR image, largest first, each with a crop for side-by-side view."""
    cascade = _load()
    if cascade is None:
        return []
    h, w = image.shape[:2]
    scale = min(1.0, work_width / w)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if scale < 1:
        gray = cv2.resize(
            gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA
        )
    gray = cv2.equalizeHist(gray)
    boxes = cascade.detect(gray, min_size=min_size)
    faces = []
    for bx, by, bw, bh in boxes:
        box = (int(bx / scale), int(by / scale), int(bw / scale), int(bh / scale))
        faces.append(Face(box, _crop(image, box)))
    faces.sort(key=lambda f: -f.box[2] * f.box[3])
    return faces


def portrait_face(rectified: np.ndarray) -> Face | None:
    """The holder's portrait on a rectified document: the largest face on it."""
    faces = find_faces(rectified, work_width=min(640, rectified.shape[1]), min_size=40)
    return faces[0] if faces else None
