"""The outline search on a scaled frame: lines, outlines and their scores."""

import cv2
import numpy as np

from media.document import corner_error, order_corners
from media.document_score import Support
from media.document_search import edge_maps, hough_lines, search


def _scene(corners, inner=None, seed=1):
    """A light card with rows of print (and an optional inner frame) on a
    darker, noisy desk."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(70, 6, (360, 640, 3)), 0, 255).astype(np.uint8)
    cv2.fillConvexPoly(img, np.int32(corners), (215, 220, 225), cv2.LINE_AA)
    card = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(card, np.int32(corners), 255)
    card = cv2.erode(card, np.ones((25, 25), np.uint8))
    text = img.copy()
    x0, y0 = np.int32(np.asarray(corners).min(0))
    for row in range(12):
        cv2.putText(
            text,
            "SPECIMEN 0123 UTOPIA",
            (int(x0) - 40, int(y0) + 20 + 18 * row),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (60, 60, 70),
            1,
            cv2.LINE_AA,
        )
    img = np.where(card[..., None] > 0, text, img)
    if inner is not None:
        cv2.polylines(img, [np.int32(inner)], True, (90, 80, 70), 2, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


CARD = np.array([[150, 80], [490, 95], [480, 305], [140, 290]], np.float64)


def _side_errors(lines, corners):
    """Per side of the outline, the distance of its ends from the nearest line."""
    out = []
    for p, q in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        d = [
            max(abs(a * p[0] + b * p[1] - c), abs(a * q[0] + b * q[1] - c))
            for a, b, c in lines[:, :3]
        ]
        out.append(min(d))
    return np.array(out)


def test_hough_lines_card_sides_within_two_pixels():
    thin, _, _ = edge_maps(_scene(CARD))
    lines = hough_lines(thin)
    assert (_side_errors(lines, CARD) < 2.0).all()


def test_search_finds_card_not_inner_frame():
    inner = CARD + [[40, 40], [-40, 40], [-40, -40], [40, -40]]
    found = search(_scene(CARD, inner), None)
    assert found is not None and not found.cut
    assert corner_error(order_corners(found.corners), order_corners(CARD)) < 0.005


def test_search_card_over_frame_edge_is_completed():
    card = CARD + [260, 0]  # the right short side 100 px beyond the frame
    found = search(_scene(card), None)
    assert found is not None and found.cut
    assert (found.corners[:, 0] > 640).sum() == 2


def test_search_blank_frame_finds_nothing():
    assert search(np.full((360, 640, 3), 128, np.uint8), None) is None


def test_support_counts_step_edge_along_its_line_only():
    gray = np.full((120, 200), 60, np.float32)
    gray[:, 100:] = 200  # a step at x = 100, rising to the right
    grad = (
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.25),
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.25),
    )
    # x = 99.5 (on the edge) and x = 50 (flat), normals pointing to +x
    lines = np.array([[1.0, 0.0, 99.5], [1.0, 0.0, 50.0]])
    sup = Support(lines, grad)
    on = np.array([0, 1])
    ends = sup.param(on, np.array([[99.5, 10.0], [50.0, 10.0]]))
    other = sup.param(on, np.array([[99.5, 90.0], [50.0, 90.0]]))
    lo, hi = np.minimum(ends, other), np.maximum(ends, other)
    pos, neg, seen = sup.counts(on, lo, hi)  # per offset -1, 0, 1 px
    assert pos.max(0).tolist() == [81, 0]
    assert neg.max(0).tolist() == [0, 0]
    assert seen.tolist() == [81, 81]
