"""Find an ID-1 card or TD3 passport page in a frame and rectify it.

Pure functions on BGR uint8 arrays; no state, safe to call from worker threads.
The search runs on a frame scaled to WORK_WIDTH (media.document_search); the
sides are then refined on the full-resolution frame along the found outline
(media.document_refine). A side cut off by the frame edge is completed from the
document's proportions, the kind told by the MRZ's pitch when it is not given
(media.document_kind). In a live loop `track_document` follows the previous
frame's outline and falls back to a search.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from media.document_geometry import (
    ASPECT,
    kind_of,
    metric_ratio,
    order_corners,
    outside,
    visible_share,
)
from media.document_refine import corners_from_lines, refine, refine_lines
from media.document_search import GOOD, SAME_VIEW, overshoots, score_quads, search
from media.frame_size import analysable

logger = logging.getLogger(__name__)

__all__ = [
    "ASPECT",
    "RECTIFIED_SIZE",
    "Detection",
    "corner_error",
    "detect_document",
    "metric_ratio",
    "order_corners",
    "rectify",
    "track_document",
]

# the rectified images are at 300 dpi (11.811 px/mm)
RECTIFIED_SIZE = {"id1": (1011, 638), "td3": (1476, 1039)}
WORK_WIDTH = 640  # the search runs on the frame scaled by a whole factor to this
# a second refinement pass only after the first moved a corner this share of the
# search band: the coarse side had sat on an inner edge (MRZ, header band)
SECOND_PASS = 0.5
TRACK_REL_REACH = 0.08
TRACK_REACH = 0.03  # search band when tracking, share of the frame's long side
# a refined outline whose sides run on past its corners (the search's overshoot
# factor below this share of the search outline's) is refined only REFINE_NEAR
# px around the search's outline
KEEP_REFINED = 0.9
REFINE_NEAR = 6.0
RATIO_TOLERANCE = 0.06  # log of the proportions' deviation a tracked outline may have
RECHECK = 3  # frames tracked between full searches
# corner error (share of the diagonal) at which a search agrees with the outline
# followed (a frame's motion is well under it)
AGREE = 0.015


@dataclass(frozen=True)
class Detection:
    """A document found in a frame: corners TL, TR, BR, BL in frame pixels."""

    corners: np.ndarray  # (4, 2) float32, may lie outside the frame
    kind: str  # "id1" or "td3"
    score: float  # 0..1, edge support of the outline
    visible: float  # share of the document's area inside the frame
    completed: bool = False  # a side outside the frame was completed from proportions
    age: int = 0  # frames followed since the last full search

    @property
    def area(self) -> float:
        return float(cv2.contourArea(self.corners.astype(np.float32)))

    def to_json(self) -> dict:
        return {
            "corners": [
                [round(float(x), 1), round(float(y), 1)] for x, y in self.corners
            ],
            "kind": self.kind,
            "score": round(self.score, 3),
            "visible": round(self.visible, 3),
            "completed": self.completed,
        }


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _check_frame(frame: np.ndarray) -> None:
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("detect_document needs a BGR image of shape (h, w, 3)")


def detect_document(
    frame: np.ndarray, kind: str | None = None, *, work_width: int = WORK_WIDTH
) -> Detection | None:
    """Find the document (ID-1 card or TD3 page) in a BGR frame, or None."""
    _check_frame(frame)
    if not analysable(frame):
        return None
    h, w = frame.shape[:2]
    small, _ = _scaled(frame, work_width)
    found = search(small, kind)
    if found is None:
        return None

    # the sides onto the outermost strong edge nearby, at full resolution
    quad = found.corners * (w / small.shape[1])
    reach = max(5.0, 0.02 * max(h, w))
    gray = _gray(frame)
    corners, ckind, completed, _ = refine(gray, quad, kind, reach)
    moved = float(np.abs(corners - quad).max())
    if not completed and moved > SECOND_PASS * reach:
        # the coarse side may have sat on an inner edge further in than one
        # band reaches
        corners, ckind, completed, _ = refine(gray, corners, kind, reach)
    if not completed and not found.cut:
        # a side that moved out onto a line through the scene runs on past
        # the corners: keep the search's outline, refined in place
        before, after = overshoots(
            small, np.stack([found.corners, corners * (small.shape[1] / w)])
        )
        if after < KEEP_REFINED * before:
            lines, _ = refine_lines(gray, quad, REFINE_NEAR)
            near = corners_from_lines(gray, lines, quad, kind)[0]
            corners = near if np.isfinite(near).all() else quad
    doc_kind = ckind or kind or found.kind
    if not completed and not kind:
        ratio = metric_ratio(corners, w, h)
        doc_kind = kind_of(ratio) if np.isfinite(ratio) else doc_kind
    return _detection(corners, doc_kind, found.score, completed, w, h)


def _scaled(frame: np.ndarray, width: int = WORK_WIDTH) -> tuple[np.ndarray, int]:
    """The frame scaled down by a whole factor to about `width`, and the factor
    (a whole factor keeps INTER_AREA on its fast path: 1280 px -> 2)."""
    h, w = frame.shape[:2]
    factor = max(1, round(w / width))
    if factor == 1:
        return frame, 1
    small = cv2.resize(frame, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return small, factor


def _detection(
    corners: np.ndarray,
    kind: str,
    score: float,
    completed: bool,
    w: int,
    h: int,
    age: int = 0,
) -> Detection:
    corners = order_corners(corners)
    return Detection(
        corners.astype(np.float32),
        kind,
        float(min(1.0, score)),
        visible_share(corners, w, h),
        completed,
        age,
    )


def track_document(
    frame: np.ndarray, previous: Detection | None, kind: str | None = None
) -> Detection | None:
    """The document in a frame that follows `previous`: its sides are searched in a
    band around the old outline; a full search runs when they are lost, and
    every RECHECK frames beside the tracking, so that a wrong first outline is
    not followed for long: where the two disagree the better scored wins."""
    _check_frame(frame)
    if not analysable(frame):
        return None
    if previous is None:
        return detect_document(frame, kind)
    if previous.age < RECHECK:
        return _track(frame, previous, kind)
    # the search instead of the tracking; the outline followed so far is
    # compared with the search's (a frame's motion apart) only when they differ
    found = detect_document(frame, kind)
    if found is not None and (
        corner_error(found.corners, previous.corners) < AGREE
        or _better(frame, found, previous)
    ):
        return found
    tracked = _track(frame, previous, kind)
    return None if tracked is None else replace(tracked, age=0)


def _better(frame: np.ndarray, a: Detection, b: Detection) -> bool:
    """Whether a fresh search's outline a should replace the tracked b: it
    scores clearly better in the search's terms, or better and shows at least
    as much of the frame (an inner frame such as a portrait or a hologram
    patch can score well too)."""
    small, factor = _scaled(frame)
    quads = np.stack([a.corners, b.corners]).astype(np.float64) / factor
    cut = np.array([a.visible < 0.98, b.visible < 0.98])
    sa, sb = score_quads(small, quads, cut)
    larger = a.area * a.visible >= SAME_VIEW * b.area * b.visible
    return bool(sa * GOOD > sb or (sa > sb and larger))


def _track(
    frame: np.ndarray, previous: Detection, kind: str | None
) -> Detection | None:
    h, w = frame.shape[:2]
    gray = _gray(frame)
    quad = previous.corners.astype(np.float64)
    lines, support = refine_lines(
        gray, quad, TRACK_REACH * max(h, w), rel_reach=TRACK_REL_REACH
    )
    seen = np.array([ln is not None for ln in lines])
    if sum(seen) < 3 or support[seen].min() < 0.6:
        return detect_document(frame, kind)
    # a side not seen must be out of view: one in view without an edge is not
    # the document's (a completion that guessed the kind wrong)
    mids = (quad + np.roll(quad, -1, axis=0)) / 2
    if (~seen & ~outside(mids, w, h, 0.0)).any():
        return detect_document(frame, kind)
    # a kind guessed for a cut-off document is guessed afresh in every frame
    guess = kind or (None if previous.completed else previous.kind)
    corners, ckind, completed = corners_from_lines(gray, lines, quad, guess)
    doc_kind = ckind or guess or previous.kind
    if not np.isfinite(corners).all():
        return detect_document(frame, kind)
    # an outline that took an inner edge (header band, MRZ) for a side has the
    # wrong proportions: search afresh
    ratio = metric_ratio(corners, w, h)
    if not completed and not abs(np.log(ratio / ASPECT[doc_kind])) < RATIO_TOLERANCE:
        return detect_document(frame, kind)
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        return detect_document(frame, kind)
    score = float(support[seen].mean())
    return _detection(corners, doc_kind, score, completed, w, h, previous.age + 1)


def rectify(
    frame: np.ndarray,
    corners: np.ndarray,
    kind: str = "id1",
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The document warped to a flat, upright image (default 300 dpi)."""
    tw, th = size or RECTIFIED_SIZE[kind]
    dst = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
    hom = cv2.getPerspectiveTransform(np.asarray(corners, np.float32), dst)
    return cv2.warpPerspective(
        frame, hom, (tw, th), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest corner distance as a share of the true diagonal, over the four
    cyclic orderings (the detector does not know which end is up)."""
    truth = np.asarray(truth, np.float64)
    found = np.asarray(found, np.float64)
    diag = float(np.linalg.norm(truth[2] - truth[0]))
    errs = []
    for k in range(4):
        rolled = np.roll(found, k, axis=0)
        errs.append(np.linalg.norm(rolled - truth, axis=1).max())
    return min(errs) / diag
