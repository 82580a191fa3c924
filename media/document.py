"""Find an ID-1 card or TD3 passport page in a frame and rectify it.

Pure functions on BGR uint8 arrays; no state, safe to call from worker threads.
The search runs on a frame scaled to WORK_WIDTH; the sides are then refined on the
full-resolution frame only along the found outline. A side cut off by the frame
edge is completed from the document's proportions (ID-1 or TD3). In a live loop
`track_document` follows the previous frame's outline and falls back to a search.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

# ISO/IEC 7810 ID-1 85.60 x 53.98 mm and ICAO TD3 125 x 88 mm; the rectified images
# are at 300 dpi (11.811 px/mm).
ASPECT = {"id1": 85.60 / 53.98, "td3": 125.0 / 88.0}
RECTIFIED_SIZE = {"id1": (1011, 638), "td3": (1476, 1039)}
WORK_WIDTH = 640  # the search runs on the frame scaled by a whole factor to this
# Focal length as a share of the frame width, to complete a cut-off side and to
# measure proportions on the document plane: phone main cameras film 16:9 video at
# about 65 degrees horizontal field of view.
FOCAL_FACTOR = 0.8
MAX_CANDIDATES = 300  # outlines that get the full edge scoring
# after a search a side is refined this share of the document's extent to either
# side: a coarse side on the first of three MRZ lines lies about 21 % inside the
# outline. A tracked side moves less; the wider band lost cut-off documents.
REFINE_REACH = 0.2
TRACK_REL_REACH = 0.08
TRACK_REACH = 0.03  # search band when tracking, share of the frame's long side
RATIO_TOLERANCE = 0.06  # log of the proportions' deviation a tracked outline may have
# turns of the edge against the old side tried (offset samples per profile);
# measured: allowing +-0.25 or +-0.6 lost 4-5 % of tracked frames to clutter
SLOPES = (0.0,)
EDGE_MIN = 4.0  # grey levels per pixel across an outline


@dataclass(frozen=True)
class Detection:
    """A document found in a frame: corners TL, TR, BR, BL in frame pixels."""

    corners: np.ndarray  # (4, 2) float32, may lie outside the frame
    kind: str  # "id1" or "td3"
    score: float  # 0..1, edge support of the outline
    visible: float  # share of the document's area inside the frame
    completed: bool = False  # a side outside the frame was completed from proportions

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


# --- geometry helpers ------------------------------------------------------------


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Order four points TL, TR, BR, BL with TL-TR along a long side."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    centre = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(ang)]  # clockwise in image coordinates, starting top-left-ish
    # start at the point nearest the top-left of the bounding box
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    pts = np.roll(pts, -start, axis=0)
    side = np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1)
    if side[0] + side[2] < side[1] + side[3]:
        # portrait in the frame: rotate so that TL-TR is a long side
        pts = np.roll(pts, -1, axis=0) if pts[1, 1] < pts[3, 1] else np.roll(pts, 1, 0)
    return pts


def _homog_line(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.cross([p[0], p[1], 1.0], [q[0], q[1], 1.0])


def _meet(l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Intersections of homogeneous lines (..., 3); NaN where parallel."""
    x = np.cross(l1, l2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x[..., :2] / x[..., 2:3]
    out[np.abs(x[..., 2]) < 1e-9] = np.nan
    return out


def _visible_share(quad: np.ndarray, w: int, h: int) -> float:
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    area = cv2.contourArea(quad.astype(np.float32))
    if area <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), frame)
    return float(inter / area)


def _outside(pts: np.ndarray, w: int, h: int, margin: float) -> np.ndarray:
    x, y = pts[..., 0], pts[..., 1]
    return (x < -margin) | (x > w + margin) | (y < -margin) | (y > h + margin)


# --- completing a side outside the frame -----------------------------------------


def _complete(
    l1: np.ndarray,
    l2: np.ndarray,
    s: np.ndarray,
    towards: np.ndarray,
    length: np.ndarray,
    w: int,
    h: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Quads A, B, B', A' from two parallel sides l1, l2 and the side s that joins
    them (homogeneous pixel lines, (N, 3)): the fourth side lies `length` times
    |AB| away on the document plane, on the side of `towards` (an image point
    on l1's document side). Assumes square pixels, the principal point at the
    centre and FOCAL_FACTOR; returns (quads, valid)."""
    f, cx, cy = FOCAL_FACTOR * w, w / 2, h / 2

    def norm_line(ln: np.ndarray) -> np.ndarray:
        return np.stack(
            [ln[:, 0] * f, ln[:, 1] * f, ln[:, 0] * cx + ln[:, 1] * cy + ln[:, 2]], 1
        )

    n1, n2, ns = norm_line(l1), norm_line(l2), norm_line(s)
    a, b = np.cross(n1, ns), np.cross(n2, ns)  # corners, as rays
    d1 = np.cross(n1, n2)  # direction of the parallel sides (vanishing point)
    d2 = np.cross(ns, d1)  # the perpendicular direction on s
    normal = np.cross(d1, d2)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = a / a[:, 2:3], b / b[:, 2:3]  # rays in front of the camera
        d1 = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
        flip = np.sign(np.einsum("ij,ij->i", normal, a))
        normal = normal * flip[:, None]
        xa = a / np.einsum("ij,ij->i", normal, a)[:, None]
        xb = b / np.einsum("ij,ij->i", normal, b)[:, None]
        side = np.linalg.norm(xa - xb, axis=1)

        def project(x: np.ndarray) -> np.ndarray:
            return np.stack([x[:, 0] / x[:, 2] * f + cx, x[:, 1] / x[:, 2] * f + cy], 1)

        pa, pb = project(xa), project(xb)
        # which way along the sides the document lies
        step = project(xa + 0.01 * side[:, None] * d1) - pa
        sign = np.sign(np.einsum("ij,ij->i", towards - pa, step))
        far = (sign * length * side)[:, None] * d1
        xa2, xb2 = xa + far, xb + far
        quads = np.stack([pa, pb, project(xb2), project(xa2)], 1)
        valid = (
            np.isfinite(quads).all((1, 2))
            & (xa[:, 2] > 0)
            & (xb[:, 2] > 0)
            & (xa2[:, 2] > 0)
            & (xb2[:, 2] > 0)
            & (sign != 0)
        )
    return quads, valid


def _metric_ratios(quads: np.ndarray, w: int, h: int) -> np.ndarray:
    """Long over short side of each outline (Q, 4, 2) on the document plane, the
    perspective removed with the assumed camera; NaN where that fails."""
    f, cx, cy = FOCAL_FACTOR * w, w / 2, h / 2
    pts = np.concatenate(
        [(quads - [cx, cy]) / f, np.ones(quads.shape[:2] + (1,))], axis=2
    )
    sides = np.cross(pts, np.roll(pts, -1, axis=1))
    normal = np.cross(
        np.cross(sides[:, 0], sides[:, 2]), np.cross(sides[:, 1], sides[:, 3])
    )
    depth = np.einsum("qij,qj->qi", pts, normal)
    with np.errstate(divide="ignore", invalid="ignore"):
        world = pts / depth[..., None]
        length = np.linalg.norm(world - np.roll(world, -1, axis=1), axis=2)
        a, b = length[:, 0] + length[:, 2], length[:, 1] + length[:, 3]
        ratio = np.maximum(a, b) / np.minimum(a, b)
    same_side = np.all(depth > 0, axis=1) | np.all(depth < 0, axis=1)
    return np.where(same_side & np.isfinite(ratio), ratio, np.nan)


def metric_ratio(corners: np.ndarray, w: int, h: int) -> float:
    """Long over short side of the outline on the document plane (perspective
    removed with the assumed camera), for telling ID-1 from TD3 and for
    rejecting outlines that took an inner edge for a side."""
    return float(_metric_ratios(np.asarray(corners, np.float64)[None], w, h)[0])


def _kind_of(ratio: float) -> str:
    return min(ASPECT, key=lambda k: abs(np.log(ratio / ASPECT[k])))


# --- candidates --------------------------------------------------------------------


def _edge_maps(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canny edges of grey and saturation (a card can differ from the desk in
    either), thin and dilated."""
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    sat = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[..., 1], (5, 5), 0)
    thin = np.zeros(gray.shape, np.uint8)
    for chan in (gray, sat):
        med = float(np.median(chan))
        edges = cv2.Canny(chan, max(10.0, 0.5 * med), max(30.0, 1.2 * med))
        thin = np.maximum(thin, edges)
    return thin, cv2.dilate(thin, np.ones((3, 3), np.uint8))


def _quad_from_polygon(poly: np.ndarray, w: int, h: int) -> np.ndarray | None:
    """Four document sides from a polygon whose border-hugging edges are dropped."""
    poly = poly.reshape(-1, 2).astype(np.float64)
    if len(poly) == 4:
        return poly
    margin = 3.0

    def on_border(p: np.ndarray, q: np.ndarray) -> bool:
        for axis, limit in ((0, 0), (0, w - 1), (1, 0), (1, h - 1)):
            if abs(p[axis] - limit) < margin and abs(q[axis] - limit) < margin:
                return True
        return False

    sides = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        if not on_border(p, q):
            sides.append((float(np.linalg.norm(q - p)), i, p, q))
    if len(sides) < 4:
        return None
    # keep the four longest sides in polygon order
    keep = sorted(sorted(sides, key=lambda s: -s[0])[:4], key=lambda s: s[1])
    perimeter = sum(s[0] for s in sides)
    if sum(s[0] for s in keep) < 0.8 * perimeter:
        return None
    lines = np.array([_homog_line(s[2], s[3]) for s in keep])
    corners = _meet(np.roll(lines, 1, axis=0), lines)
    return None if not np.isfinite(corners).all() else corners


def _contour_quads(edges: np.ndarray) -> list[np.ndarray]:
    """Quadrilaterals from closed outlines (the whole card edge in one contour)."""
    h, w = edges.shape
    min_area = 0.06 * w * h
    out = []
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    for cnt in contours:
        if cv2.contourArea(cnt) < min_area:
            continue
        hull = cv2.convexHull(cnt)
        peri = cv2.arcLength(hull, True)
        for eps in (0.015, 0.03, 0.05):
            poly = cv2.approxPolyDP(hull, eps * peri, True)
            if 4 <= len(poly) <= 8:
                quad = _quad_from_polygon(poly, w, h)
                if quad is not None:
                    out.append(quad)
                    break
    return out


def _hough_lines(edges: np.ndarray, limit: int = 28) -> np.ndarray:
    """Long straight edges merged into lines a*x + b*y = c; rows a, b, c, length
    and the midpoint of the longest segment."""
    h, w = edges.shape
    segs = cv2.HoughLinesP(
        edges, 1, np.pi / 180, 25, minLineLength=0.07 * w, maxLineGap=5
    )
    if segs is None:
        return np.zeros((0, 6))
    segs = segs.reshape(-1, 4).astype(np.float64)
    dx, dy = segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]
    length = np.hypot(dx, dy)
    a, b = -dy / length, dx / length
    flip = (a < 0) | ((a == 0) & (b < 0))
    a[flip], b[flip] = -a[flip], -b[flip]
    c = a * segs[:, 0] + b * segs[:, 1]
    mx, my = (segs[:, 0] + segs[:, 2]) / 2, (segs[:, 1] + segs[:, 3]) / 2
    tol = 5 * w / 640
    lines: list[list[float]] = []
    for k in np.argsort(-length):
        for line in lines:
            if (
                abs(line[0] * b[k] - line[1] * a[k]) < 0.05
                and abs(line[2] - c[k]) < tol
            ):
                line[3] += length[k]
                break
        else:
            lines.append([a[k], b[k], c[k], length[k], mx[k], my[k]])
        if len(lines) >= 3 * limit:
            break
    lines.sort(key=lambda ln: -ln[3])
    return np.array(lines[:limit])


def _parallel_pairs(lines: np.ndarray, w: int, h: int) -> np.ndarray:
    """Index pairs of roughly parallel lines far enough apart to be two sides."""
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    ii, jj = np.triu_indices(len(lines), 1)
    diff = np.abs(np.angle(np.exp(2j * (ang[ii] - ang[jj])))) / 2
    sep = np.abs(lines[ii, 2] - lines[jj, 2] * np.cos(ang[ii] - ang[jj]))
    keep = (diff < np.radians(22)) & (sep > 0.12 * min(w, h))
    return np.stack([ii[keep], jj[keep]], 1)


def _homog(lines: np.ndarray) -> np.ndarray:
    return np.stack([lines[:, 0], lines[:, 1], -lines[:, 2]], 1)


def _line_quads(lines: np.ndarray, w: int, h: int) -> np.ndarray:
    """All quads made of two roughly parallel pairs of lines, (Q, 4, 2)."""
    if len(lines) < 4:
        return np.zeros((0, 4, 2))
    pairs = _parallel_pairs(lines, w, h)
    if len(pairs) < 2:
        return np.zeros((0, 4, 2))
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    pang = ang[pairs[:, 0]]
    p, q = np.triu_indices(len(pairs), 1)
    sel = np.abs(np.sin(pang[p] - pang[q])) > np.sin(np.radians(50))
    p, q = p[sel], q[sel]
    a1, a2 = pairs[p, 0], pairs[p, 1]
    b1, b2 = pairs[q, 0], pairs[q, 1]
    distinct = (a1 != b1) & (a1 != b2) & (a2 != b1) & (a2 != b2)
    a1, a2, b1, b2 = a1[distinct], a2[distinct], b1[distinct], b2[distinct]
    hl = _homog(lines)
    quads = np.stack(
        [
            _meet(hl[a1], hl[b1]),
            _meet(hl[b1], hl[a2]),
            _meet(hl[a2], hl[b2]),
            _meet(hl[b2], hl[a1]),
        ],
        1,
    )
    return quads[np.isfinite(quads).all(axis=(1, 2))]


def _cut_quads(lines: np.ndarray, w: int, h: int, aspect: float) -> np.ndarray:
    """Quads A, B, B', A' from two parallel lines and a third line joining them,
    completed beyond the frame edge, where the completed side lies outside the
    frame. The joining side may be a short side (length aspect * |AB|) or a long
    one (|AB| / aspect)."""
    if len(lines) < 3:
        return np.zeros((0, 4, 2))
    pairs = _parallel_pairs(lines, w, h)
    if not len(pairs):
        return np.zeros((0, 4, 2))
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    grid = np.meshgrid(np.arange(len(pairs)), np.arange(len(lines)), indexing="ij")
    pi, k = grid[0].ravel(), grid[1].ravel()
    i, j = pairs[pi, 0], pairs[pi, 1]
    sel = (np.abs(np.sin(ang[i] - ang[k])) > np.sin(np.radians(50))) & (k != i)
    sel &= k != j
    i, j, k = i[sel], j[sel], k[sel]
    if not len(i):
        return np.zeros((0, 4, 2))
    hl = _homog(lines)
    towards = lines[i, 4:6]
    out = []
    for ratio in (aspect, 1 / aspect):
        quads, valid = _complete(
            hl[i], hl[j], hl[k], towards, np.full(len(i), ratio), w, h
        )
        near = ~_outside(quads[:, :2], w, h, -2.0)  # A, B inside the frame
        far = _outside(quads[:, 2:], w, h, 2.0).all(1)  # A', B' outside
        out.append(quads[valid & near.all(1) & far])
    return np.concatenate(out)


def _signed_areas(quads: np.ndarray) -> np.ndarray:
    nxt = np.roll(quads, -1, axis=1)
    cross = quads[:, :, 0] * nxt[:, :, 1] - nxt[:, :, 0] * quads[:, :, 1]
    return 0.5 * cross.sum(1)


def _areas(quads: np.ndarray) -> np.ndarray:
    return np.abs(_signed_areas(quads))


def _plausible(quads: np.ndarray, w: int, h: int, ratio_ok: bool = True) -> np.ndarray:
    """Cheap shape filter before the edge sampling: document-like proportions
    and a sensible size; a mask."""
    nxt = np.roll(quads, -1, axis=1)
    side = np.linalg.norm(nxt - quads, axis=2)
    ratio = np.maximum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) / (
        np.minimum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) + 1e-9
    )
    frac = _areas(quads) / (w * h)
    keep = (frac > 0.04) & (frac < (3.0 if not ratio_ok else 1.2))
    if ratio_ok:
        keep &= (ratio > 1.15) & (ratio < 2.1)
    return keep


def _prefilter(quads: np.ndarray, edges: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` quads whose sides run most along edge pixels."""
    if len(quads) <= keep:
        return np.arange(len(quads))
    h, w = edges.shape
    t = np.linspace(0.08, 0.92, 8)
    nxt = np.roll(quads, -1, axis=1)
    pts = quads[:, :, None, :] + t[None, None, :, None] * (nxt - quads)[:, :, None, :]
    xs, ys = pts[..., 0], pts[..., 1]
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    xi = np.clip(xs, 0, w - 1).astype(np.int32)
    yi = np.clip(ys, 0, h - 1).astype(np.int32)
    hit = (edges[yi, xi] > 0) & inside
    side = hit.sum(2) / np.maximum(inside.sum(2), 1)
    seen = inside.sum(2) >= 3
    cheap = np.where(seen, side, 1.0).min(1) + side.sum(1) / np.maximum(seen.sum(1), 1)
    return np.argsort(-cheap)[:keep]


def _score_quads(
    quads: np.ndarray,
    grad: tuple[np.ndarray, np.ndarray],
    kind: str | None,
    cut: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Edge support, shape and size of each quad; returns (scores, is_td3). Quads
    marked `cut` were completed beyond the frame (ordered A, B, B', A'): their
    proportions are right by construction, and their two open sides must be
    supported right up to the frame edge."""
    h, w = grad[0].shape
    nxt = np.roll(quads, -1, axis=1)
    side = np.linalg.norm(nxt - quads, axis=2)  # (Q, 4)
    e1, e2 = nxt - quads, np.roll(quads, -2, axis=1) - nxt
    cross = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    convex = np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)
    area = _areas(quads)
    long_ = np.maximum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3])
    short = np.minimum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) + 1e-9
    ratio = _metric_ratios(quads, w, h)
    ratio = np.where(np.isfinite(ratio), ratio, long_ / short)
    para = (
        np.minimum(side[:, 0], side[:, 2])
        / (np.maximum(side[:, 0], side[:, 2]) + 1e-9)
        * np.minimum(side[:, 1], side[:, 3])
        / (np.maximum(side[:, 1], side[:, 3]) + 1e-9)
    )
    para = np.where(cut, 1.0, para)
    fit_id1 = np.exp(-np.abs(np.log(ratio / ASPECT["id1"])) / 0.12)
    fit_td3 = np.exp(-np.abs(np.log(ratio / ASPECT["td3"])) / 0.12)
    if kind == "id1":
        fit_td3 = np.zeros_like(fit_td3)
    elif kind == "td3":
        fit_id1 = np.zeros_like(fit_id1)
    fit = np.where(cut, 1.0, np.maximum(fit_id1, fit_td3))

    # edge support: a step edge across the side, of one polarity all along it
    # (lines through text or patterns flip polarity, a document's outline does not)
    gx, gy = grad
    t = np.linspace(0.03, 0.97, 32)
    pts = quads[:, :, None, :] + t[None, None, :, None] * (nxt - quads)[:, :, None, :]
    d = (nxt - quads) / (side[..., None] + 1e-9)
    normal = np.stack([-d[..., 1], d[..., 0]], -1)[:, :, None, :]  # (Q, 4, 1, 2)
    best = np.zeros(pts.shape[:3], np.float32)
    for off in (-1.0, 1.0):
        p = pts + off * normal
        xi = np.clip(p[..., 0], 0, w - 1).astype(np.int32)
        yi = np.clip(p[..., 1], 0, h - 1).astype(np.int32)
        gn = gx[yi, xi] * normal[..., 0] + gy[yi, xi] * normal[..., 1]
        best = np.where(np.abs(gn) > np.abs(best), gn, best)
    xs, ys = pts[..., 0], pts[..., 1]
    inside = (xs >= 1) & (xs < w - 1) & (ys >= 1) & (ys < h - 1)
    strong = (np.abs(best) > 12) & inside
    pos = ((best > 0) & strong).sum(2)
    neg = ((best < 0) & strong).sum(2)
    n_in = inside.sum(2)
    # the inside must be brighter (or darker) than the outside on all four sides
    orient = np.sign(_signed_areas(quads))[:, None]
    signed = (pos - neg) / np.maximum(n_in, 1) * orient
    major = np.sign(signed.sum(1, keepdims=True) + 1e-9)
    support = np.clip(signed * major, 0, 1)  # (Q, 4)
    seen = n_in >= 8
    side_ok = np.where(seen, support, 1.0).min(1)
    mean_support = (support * seen).sum(1) / np.maximum(seen.sum(1), 1)
    visible = inside.sum((1, 2)) / inside[0].size
    frac = area / (w * h)
    score = (
        mean_support
        * np.clip(side_ok / 0.5, 0, 1)
        * (0.4 + 0.6 * fit)
        * para
        * np.clip(frac / 0.08, 0, 1) ** 0.3
        * np.clip(visible / 0.6, 0, 1)
    )
    good = strong & (np.sign(best) * orient[..., None] * major[..., None] > 0)
    score *= _end_support(good, inside)
    if cut.any():
        sign = (orient * major)[:, 0]
        score[cut] *= _tail_support(quads[cut], grad, sign[cut])
    score[~convex | (seen.sum(1) < 3)] = 0
    return score, fit_td3 > fit_id1


def _end_support(good: np.ndarray, inside: np.ndarray, k: int = 6) -> np.ndarray:
    """A factor 0..1: every side must be supported near both its ends; an
    outline whose sides overshoot the document's corners (a background line
    taken for a side) is not."""
    ends = []
    for sl in (slice(0, k), slice(-k, None)):
        n_in = inside[:, :, sl].sum(2)
        frac = good[:, :, sl].sum(2) / np.maximum(n_in, 1)
        ends.append(np.where(n_in >= 3, frac, 1.0))
    return np.clip(np.minimum(*ends).min(1) / 0.5, 0, 1)


def _tail_support(
    quads: np.ndarray, grad: tuple[np.ndarray, np.ndarray], sign: np.ndarray
) -> np.ndarray:
    """For cut quads (A, B, B', A'): a factor 0..1, how well sides B-B' and A-A'
    are supported over the last pixels before they leave the frame (a document
    whose far side is in view has no edge there)."""
    gx, gy = grad
    h, w = gx.shape
    out = np.ones(len(quads))
    for start, end in ((1, 2), (0, 3)):
        p, q = quads[:, start], quads[:, end]
        d = q - p
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(d[:, 0] > 0, (w - 2 - p[:, 0]) / d[:, 0], -p[:, 0] / d[:, 0])
            ty = np.where(d[:, 1] > 0, (h - 2 - p[:, 1]) / d[:, 1], -p[:, 1] / d[:, 1])
        tx[~np.isfinite(tx) | (tx < 0)] = np.inf
        ty[~np.isfinite(ty) | (ty < 0)] = np.inf
        exit_ = p + np.minimum(np.minimum(tx, ty), 1.0)[:, None] * d
        u = d / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
        normal = np.stack([-u[:, 1], u[:, 0]], 1)
        if start == 0:
            normal = -normal  # side A'-A runs the other way round the quad
        back = np.arange(2.0, 11.0, 1.5)
        pts = exit_[:, None, :] - back[None, :, None] * u[:, None, :]
        best = np.zeros(pts.shape[:2], np.float32)
        for off in (-1.0, 1.0):
            pp = pts + off * normal[:, None, :]
            xi = np.clip(pp[..., 0], 0, w - 1).astype(np.int32)
            yi = np.clip(pp[..., 1], 0, h - 1).astype(np.int32)
            gn = gx[yi, xi] * normal[:, None, 0] + gy[yi, xi] * normal[:, None, 1]
            best = np.where(np.abs(gn) > np.abs(best), gn, best)
        good = (np.abs(best) > 12) & (np.sign(best) * sign[:, None] > 0)
        out = np.minimum(out, np.clip((good.mean(1) - 0.4) / 0.4, 0, 1))
    return out


# --- refinement ------------------------------------------------------------------


def _side_samples(
    gray: np.ndarray, p: np.ndarray, q: np.ndarray, n: np.ndarray, reach: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey-level profiles across the side p-q (outward normal n): base points
    (K, 2), offsets (M,), gradient along n at the offsets (K, M), NaN rows where
    the side itself is out of the frame."""
    h, w = gray.shape
    d = (q - p) / (np.linalg.norm(q - p) + 1e-9)
    offs = np.arange(-reach - 1, reach + 2, 1.0)
    base = p[None, :] + np.linspace(0.04, 0.96, 40)[:, None] * (q - p)[None, :]
    # three profiles 1.5 px apart along the side, averaged against sensor noise
    along = np.array([-1.5, 0.0, 1.5])
    pts = (
        base[None, :, None, :]
        + along[:, None, None, None] * d
        + offs[None, None, :, None] * n
    ).astype(np.float32)
    k = len(base)
    prof = cv2.remap(
        gray,
        pts[..., 0].reshape(3 * k, -1),
        pts[..., 1].reshape(3 * k, -1),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float32)
    prof = prof.reshape(3, k, -1).mean(0)
    # a profile that runs off the frame is flat there (replicated border)
    ok = ((base >= 1) & (base < [w - 1, h - 1])).all(1)
    grad = (prof[:, 2:] - prof[:, :-2]) / 2
    grad[~ok] = np.nan
    return base, offs[1:-1], grad


def _fit_side(
    base: np.ndarray, offs: np.ndarray, grad: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray | None, float]:
    """A line (homogeneous) through the side's edge, and the share of profiles
    that show it. The edge is the outermost one that at least half the profiles
    share: inner edges such as a header band or an MRZ line can be stronger than
    a low-contrast outline, and clutter outside is not shared along the side."""
    rows = np.flatnonzero(~np.isnan(grad[:, 0]))
    g = np.abs(grad[rows])
    sign = np.sign(grad[rows])
    peak = g.max(1, initial=0.0)
    local = np.zeros(g.shape, bool)
    local[:, 1:-1] = (g[:, 1:-1] >= g[:, :-2]) & (g[:, 1:-1] >= g[:, 2:])
    # above sensor noise: most of a profile is flat, so its median gradient
    # measures the noise (1.48 * MAD is sigma for Gaussian noise)
    noise = 1.48 * float(np.median(g)) if g.size else 0.0
    local &= (g >= max(EDGE_MIN, 4.0 * noise)) & (g > 0.15 * peak[:, None])
    target, pol = _shared_edge(local, sign, rows)
    local &= sign == pol
    dist = np.where(local, np.abs(offs[None, :] - offs[target][:, None]), np.inf)
    k = dist.argmin(1)
    ok = dist.min(1, initial=np.inf) <= 3.0
    share = float(ok.sum()) / max(len(rows), 1)
    if ok.sum() < 6:
        return None, share
    r, k = np.flatnonzero(ok), k[ok]
    g = g[r]
    km, kp = np.clip(k - 1, 0, g.shape[1] - 1), np.clip(k + 1, 0, g.shape[1] - 1)
    idx = np.arange(len(k))
    gm, g0, gp = g[idx, km], g[idx, k], g[idx, kp]
    den = gm - 2 * g0 + gp
    inner = (k > 0) & (k < g.shape[1] - 1) & (den < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sub = np.where(inner, 0.5 * (gm - gp) / den, 0.0)
    off = offs[k] + sub
    pts = base[rows[r]] + off[:, None] * n[None, :]
    vx, vy, x0, y0 = cv2.fitLine(
        pts.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01
    ).ravel()
    return np.cross([x0, y0, 1.0], [x0 + vx, y0 + vy, 1.0]), share


def _shared_edge(
    local: np.ndarray, sign: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, float]:
    """Per profile, the offset index of the outermost edge that at least half
    the profiles share (within 2 samples, along a line that may turn a few
    degrees against the old side), and its polarity; the best-shared edge when
    none is shared by half."""
    if not local.size:
        return np.zeros(len(rows), np.int64), 1.0
    m = local.shape[1]
    centre = (rows.min() + rows.max()) / 2
    best: tuple[float, float, int, float] = (-np.inf, 0.0, 0, 1.0)
    for slope in SLOPES:
        shift = np.round(slope * (rows - centre)).astype(np.int64)
        cols = np.clip(np.arange(m)[None, :] + shift[:, None], 0, m - 1)
        for pol in (1.0, -1.0):
            hits = np.take_along_axis(local & (sign == pol), cols, 1).astype(np.uint8)
            support = cv2.dilate(hits, np.ones((1, 5), np.uint8)).mean(0)
            shared = np.flatnonzero(support >= 0.5)
            if len(shared):
                k = int(shared[-1])
                rank = 2.0 + k / m + support[k] / (4 * m)
            else:
                k = int(support.argmax())
                rank = float(support[k])
            best = max(best, (rank, slope, k, pol))
    _, slope, k, pol = best
    target = k + np.round(slope * (rows - centre)).astype(np.int64)
    return np.clip(target, 0, m - 1), pol


def _refine_lines(
    gray: np.ndarray,
    quad: np.ndarray,
    reach: float,
    rel_reach: float = 0.0,
) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Refitted side lines (None where a side is out of view) and their support;
    each side is searched `reach` px, or `rel_reach` of the document's extent
    across it, to either side."""
    centre = quad.mean(0)
    lines: list[np.ndarray | None] = []
    support = np.zeros(4)
    for i in range(4):
        p, q = quad[i], quad[(i + 1) % 4]
        d = (q - p) / (np.linalg.norm(q - p) + 1e-9)
        n = np.array([-d[1], d[0]])
        if n @ ((p + q) / 2 - centre) < 0:
            n = -n  # outward
        extent = abs(float(n @ ((p + q) / 2 - centre))) * 2
        base, offs, grad = _side_samples(gray, p, q, n, max(reach, rel_reach * extent))
        line, support[i] = _fit_side(base, offs, grad, n)
        lines.append(line)
    return lines, support


def _corners_from_lines(
    lines: list[np.ndarray | None], quad: np.ndarray, kind: str | None, w: int, h: int
) -> tuple[np.ndarray, str | None, bool]:
    """Corners from refitted lines; a side without a line keeps its coarse
    position, or is completed from the proportions when it lies outside the
    frame. Returns (corners, kind when completed, completed)."""
    hl = [
        ln if ln is not None else _homog_line(quad[i], quad[(i + 1) % 4])
        for i, ln in enumerate(lines)
    ]
    missing = [i for i, ln in enumerate(lines) if ln is None]
    if len(missing) == 1:
        m = missing[0]
        mid = (quad[(m + 1) % 4] + quad[m]) / 2
        if _outside(mid, w, h, 0.0):
            return _complete_side(hl, quad, m, kind, w, h)
    out = _meet(np.array(hl[-1:] + hl[:-1]), np.array(hl))
    return out, None, False


def _complete_side(
    hl: list[np.ndarray], quad: np.ndarray, m: int, kind: str | None, w: int, h: int
) -> tuple[np.ndarray, str | None, bool]:
    """Replace side m (out of view) by the completion of the other three."""
    s = (m + 2) % 4  # the opposite, visible side
    l1, l2 = hl[(s - 1) % 4], hl[(s + 1) % 4]
    coarse = np.linalg.norm(quad[(s + 1) % 4] - quad[s]) < np.linalg.norm(
        quad[(s + 2) % 4] - quad[(s + 1) % 4]
    )
    towards = ((quad[(m + 1) % 4] + quad[m]) / 2)[None, :]
    kinds = [kind] if kind else ["td3", "id1"]
    best = None
    for k in kinds:
        ratio = ASPECT[k] if coarse else 1 / ASPECT[k]
        quads, valid = _complete(
            l1[None], l2[None], hl[s][None], towards, np.array([ratio]), w, h
        )
        if not valid[0]:
            continue
        # the smallest format that still reaches 3% of its length past the edge
        far = quads[0, 2:]
        reach = 0.03 * float(np.linalg.norm(far[0] - quads[0, 1]))
        best = (quads[0], k)
        if kind or _outside(far, w, h, reach).all():
            break
    if best is None:
        return _meet(np.array(hl[-1:] + hl[:-1]), np.array(hl)), None, False
    a, b, b2, a2 = best[0]
    # back into the quad's own order: side s runs from corner s to corner s+1
    out = np.zeros((4, 2))
    out[s], out[(s + 1) % 4], out[(s + 2) % 4], out[(s + 3) % 4] = a, b, b2, a2
    return out, best[1], True


def _refine(
    gray: np.ndarray, quad: np.ndarray, kind: str | None, reach: float
) -> tuple[np.ndarray, str | None, bool, np.ndarray]:
    """Sides moved onto the outermost strong edge nearby at full resolution;
    (corners, completed kind, completed, support)."""
    h, w = gray.shape
    extent = float(np.sqrt(_areas(quad[None])[0]))
    lines, support = _refine_lines(gray, quad, reach, rel_reach=REFINE_REACH)
    corners, ckind, completed = _corners_from_lines(lines, quad, kind, w, h)
    # refuse a refinement that jumps: keep the coarse corners then
    if not np.isfinite(corners).all() or (
        not completed and np.abs(corners - quad).max() > 3 * max(reach, 0.1 * extent)
    ):
        return quad, None, False, support
    return corners, ckind, completed, support


# --- search and tracking -----------------------------------------------------------


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def _check_frame(frame: np.ndarray) -> None:
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("detect_document needs a BGR image of shape (h, w, 3)")


def _search(
    small: np.ndarray, kind: str | None
) -> tuple[np.ndarray, float, str, bool] | None:
    """Best outline in the scaled frame: (quad, score, kind, cut)."""
    sh, sw = small.shape[:2]
    thin, edges = _edge_maps(small)
    gray = cv2.GaussianBlur(_gray(small), (5, 5), 0)
    grad = (
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) / 4,
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) / 4,
    )
    lines = _hough_lines(thin)
    whole = [_line_quads(lines, sw, sh)]
    contour = _contour_quads(edges)
    if contour:
        whole.append(np.array(contour, np.float64))
    wq = np.concatenate(whole)
    wq = wq[_plausible(wq, sw, sh)]
    cq = _cut_quads(lines, sw, sh, ASPECT[kind or "id1"])
    cq = cq[_plausible(cq, sw, sh, ratio_ok=False)]
    allq = np.concatenate([wq, cq])
    cut = np.r_[np.zeros(len(wq), bool), np.ones(len(cq), bool)]
    if not len(allq):
        return None
    keep = _prefilter(allq, edges, MAX_CANDIDATES)
    allq, cut = allq[keep], cut[keep]
    scores, td3 = _score_quads(allq, grad, kind, cut)
    # the outermost of the well-supported outlines: inner frames (portrait,
    # hologram patch, header band) also look like documents; a cut outline counts
    # only its part in view
    top = float(scores.max())
    if top < 0.3:
        return None
    good = np.flatnonzero(scores >= 0.7 * top)
    shown = [_visible_share(q, sw, sh) for q in allq[good]] * _areas(allq[good])
    k = int(good[np.argmax(shown)])
    return allq[k], float(scores[k]), "td3" if td3[k] else "id1", bool(cut[k])


def detect_document(
    frame: np.ndarray, kind: str | None = None, *, work_width: int = WORK_WIDTH
) -> Detection | None:
    """Find the document (ID-1 card or TD3 page) in a BGR frame, or None."""
    _check_frame(frame)
    h, w = frame.shape[:2]
    # a whole-number factor keeps INTER_AREA on its fast path (1280 px: 3)
    factor = max(1, round(w / work_width))
    small = (
        cv2.resize(frame, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        if factor > 1
        else frame
    )
    scale = small.shape[1] / w
    found = _search(small, kind)
    if found is None:
        return None
    quad, score, found_kind, cut = found
    reach = max(5.0, 0.02 * max(h, w))
    gray = _gray(frame)
    corners, ckind, completed, _ = _refine(gray, quad / scale, kind, reach)
    if not completed:
        # a second pass: the coarse side may have sat on an inner edge (MRZ, header
        # band) further in than one search band reaches
        corners, ckind, completed, _ = _refine(gray, corners, kind, reach)
    if cut and not completed:
        return None  # the completion did not hold at full resolution
    if not completed and not kind:
        ratio = metric_ratio(corners, w, h)
        found_kind = _kind_of(ratio) if np.isfinite(ratio) else found_kind
    return _detection(corners, ckind or kind or found_kind, score, completed, w, h)


def _detection(
    corners: np.ndarray, kind: str, score: float, completed: bool, w: int, h: int
) -> Detection:
    corners = order_corners(corners)
    return Detection(
        corners.astype(np.float32),
        kind,
        float(min(1.0, score)),
        _visible_share(corners, w, h),
        completed,
    )


def track_document(
    frame: np.ndarray, previous: Detection | None, kind: str | None = None
) -> Detection | None:
    """The document in a frame that follows `previous`: its sides are searched in a
    band around the old outline; a full search runs when they are lost."""
    _check_frame(frame)
    if previous is None:
        return detect_document(frame, kind)
    h, w = frame.shape[:2]
    gray = _gray(frame)
    quad = previous.corners.astype(np.float64)
    lines, support = _refine_lines(
        gray, quad, TRACK_REACH * max(h, w), rel_reach=TRACK_REL_REACH
    )
    seen = np.array([ln is not None for ln in lines])
    if sum(seen) < 3 or support[seen].min() < 0.6:
        return detect_document(frame, kind)
    # a kind guessed for a cut-off document is guessed afresh in every frame
    guess = kind or (None if previous.completed else previous.kind)
    corners, ckind, completed = _corners_from_lines(lines, quad, guess, w, h)
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
    return _detection(corners, doc_kind, score, completed, w, h)


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
