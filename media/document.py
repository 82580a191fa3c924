"""Find an ID-1 card or TD3 passport page in a frame and rectify it.

Pure functions on BGR uint8 arrays; no state, safe to call from worker threads.
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
WORK_WIDTH = 640  # detection runs on a frame scaled to this width


@dataclass(frozen=True)
class Detection:
    """A document found in a frame: corners TL, TR, BR, BL in frame pixels."""

    corners: np.ndarray  # (4, 2) float32, may lie outside the frame
    kind: str  # "id1" or "td3"
    score: float  # 0..1, edge support of the outline
    visible: float  # share of the document's area inside the frame

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


def _intersect(l1: np.ndarray, l2: np.ndarray) -> np.ndarray | None:
    """Lines as (vx, vy, x0, y0)."""
    d1, p1 = l1[:2], l1[2:]
    d2, p2 = l2[:2], l2[2:]
    den = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(den) < 1e-6:
        return None
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / den
    return p1 + t * d1


def _line_through(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    n = np.linalg.norm(d)
    return np.array([d[0] / n, d[1] / n, a[0], a[1]], np.float64)


def _visible_share(quad: np.ndarray, w: int, h: int) -> float:
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    area = cv2.contourArea(quad.astype(np.float32))
    if area <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), frame)
    return float(inter / area)


# --- candidates --------------------------------------------------------------------


def _edge_maps(small: np.ndarray) -> list[np.ndarray]:
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    gray = cv2.GaussianBlur(gray, (5, 5), 0)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    maps = []
    for chan in (gray, cv2.GaussianBlur(hsv[..., 1], (5, 5), 0)):
        med = float(np.median(chan))
        edges = cv2.Canny(chan, max(10.0, 0.5 * med), max(30.0, 1.2 * med))
        maps.append(cv2.dilate(edges, np.ones((3, 3), np.uint8)))
    return maps


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
    lines = [_line_through(s[2], s[3]) for s in keep]
    corners = []
    for i in range(4):
        pt = _intersect(lines[i - 1], lines[i])
        if pt is None:
            return None
        corners.append(pt)
    return np.array(corners)


def _candidates(small: np.ndarray) -> list[np.ndarray]:
    """Quadrilaterals from closed outlines (the whole card edge in one contour)."""
    h, w = small.shape[:2]
    min_area = 0.06 * w * h
    out = []
    for edges in _edge_maps(small):
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


def _hough_lines(edges: np.ndarray, limit: int = 36) -> np.ndarray:
    """Long straight edges merged into lines a*x + b*y = c (rows a, b, c, length)."""
    h, w = edges.shape
    segs = cv2.HoughLinesP(
        edges, 1, np.pi / 180, 30, minLineLength=0.07 * w, maxLineGap=6
    )
    if segs is None:
        return np.zeros((0, 4))
    segs = segs.reshape(-1, 4).astype(np.float64)
    dx, dy = segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]
    length = np.hypot(dx, dy)
    a, b = -dy / length, dx / length
    flip = (a < 0) | ((a == 0) & (b < 0))
    a[flip], b[flip] = -a[flip], -b[flip]
    c = a * segs[:, 0] + b * segs[:, 1]
    lines: list[list[float]] = []
    for k in np.argsort(-length):
        for line in lines:
            if abs(line[0] * b[k] - line[1] * a[k]) < 0.05 and abs(line[2] - c[k]) < 5:
                line[3] += length[k]
                break
        else:
            lines.append([a[k], b[k], c[k], length[k]])
        if len(lines) >= 3 * limit:
            break
    lines.sort(key=lambda ln: -ln[3])
    return np.array(lines[:limit])


def _line_quads(lines: np.ndarray, w: int, h: int) -> np.ndarray:
    """All quads made of two roughly parallel pairs of lines, (Q, 4, 2)."""
    n = len(lines)
    if n < 4:
        return np.zeros((0, 4, 2))
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    ii, jj = np.triu_indices(n, 1)
    diff = np.abs(np.angle(np.exp(2j * (ang[ii] - ang[jj])))) / 2
    # the same direction, far enough apart to be the two sides of a document
    sep = np.abs(lines[ii, 2] - lines[jj, 2] * np.cos(ang[ii] - ang[jj]))
    keep = (diff < np.radians(22)) & (sep > 0.12 * min(w, h))
    pairs = np.stack([ii[keep], jj[keep]], 1)
    pang = ang[pairs[:, 0]]
    if len(pairs) < 2:
        return np.zeros((0, 4, 2))
    p, q = np.triu_indices(len(pairs), 1)
    cross = np.abs(np.sin(pang[p] - pang[q]))
    sel = cross > np.sin(np.radians(50))
    p, q = p[sel], q[sel]
    a1, a2 = pairs[p, 0], pairs[p, 1]
    b1, b2 = pairs[q, 0], pairs[q, 1]
    distinct = (a1 != b1) & (a1 != b2) & (a2 != b1) & (a2 != b2)
    a1, a2, b1, b2 = a1[distinct], a2[distinct], b1[distinct], b2[distinct]
    homo = np.stack([lines[:, 0], lines[:, 1], -lines[:, 2]], 1)

    def meet(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = np.cross(homo[u], homo[v])
        return x[:, :2] / x[:, 2:3]

    quads = np.stack([meet(a1, b1), meet(b1, a2), meet(a2, b2), meet(b2, a1)], 1)
    return quads[np.isfinite(quads).all(axis=(1, 2))]


def _signed_areas(quads: np.ndarray) -> np.ndarray:
    nxt = np.roll(quads, -1, axis=1)
    cross = quads[:, :, 0] * nxt[:, :, 1] - nxt[:, :, 0] * quads[:, :, 1]
    return 0.5 * cross.sum(1)


def _areas(quads: np.ndarray) -> np.ndarray:
    return np.abs(_signed_areas(quads))


def _plausible(quads: np.ndarray, w: int, h: int) -> np.ndarray:
    """Cheap shape filter before the costly edge sampling: convex, document-like
    proportions, a sensible size."""
    nxt = np.roll(quads, -1, axis=1)
    side = np.linalg.norm(nxt - quads, axis=2)
    ratio = np.maximum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) / (
        np.minimum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) + 1e-9
    )
    frac = _areas(quads) / (w * h)
    keep = (ratio > 1.15) & (ratio < 2.1) & (frac > 0.04) & (frac < 1.2)
    return quads[keep]


def _score_quads(
    quads: np.ndarray, grad: tuple[np.ndarray, np.ndarray], kind: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Edge support, shape and size of each quad; returns (scores, is_td3)."""
    h, w = grad[0].shape
    nxt = np.roll(quads, -1, axis=1)
    side = np.linalg.norm(nxt - quads, axis=2)  # (Q, 4)
    e1, e2 = nxt - quads, np.roll(quads, -2, axis=1) - nxt
    cross = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    convex = np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)
    area = 0.5 * np.abs(
        np.sum(quads[:, :, 0] * nxt[:, :, 1] - nxt[:, :, 0] * quads[:, :, 1], axis=1)
    )
    long_ = np.maximum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3])
    short = np.minimum(side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]) + 1e-9
    ratio = long_ / short
    para = (
        np.minimum(side[:, 0], side[:, 2])
        / (np.maximum(side[:, 0], side[:, 2]) + 1e-9)
        * np.minimum(side[:, 1], side[:, 3])
        / (np.maximum(side[:, 1], side[:, 3]) + 1e-9)
    )
    fit_id1 = np.exp(-np.abs(np.log(ratio / ASPECT["id1"])) / 0.12)
    fit_td3 = np.exp(-np.abs(np.log(ratio / ASPECT["td3"])) / 0.12)
    if kind == "id1":
        fit_td3 = np.zeros_like(fit_td3)
    elif kind == "td3":
        fit_id1 = np.zeros_like(fit_id1)
    fit = np.maximum(fit_id1, fit_td3)

    # edge support: a step edge across the side, of one polarity all along it
    # (lines through text or patterns flip polarity, a document's outline does not)
    gx, gy = grad
    t = np.linspace(0.03, 0.97, 32)
    pts = quads[:, :, None, :] + t[None, None, :, None] * (nxt - quads)[:, :, None, :]
    d = (nxt - quads) / (side[..., None] + 1e-9)
    normal = np.stack([-d[..., 1], d[..., 0]], -1)[:, :, None, :]  # (Q, 4, 1, 2)
    best = np.zeros(pts.shape[:3])
    for off in (-1.5, 0.0, 1.5):
        p = pts + off * normal
        xs, ys = p[..., 0], p[..., 1]
        xi = np.clip(xs, 0, w - 1).astype(np.int32)
        yi = np.clip(ys, 0, h - 1).astype(np.int32)
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
    score[~convex | (frac > 1.2) | (seen.sum(1) < 3)] = 0
    return score, fit_td3 > fit_id1


def _side_support(mag: np.ndarray, quad: np.ndarray) -> float:
    """Share of points along the outline that sit on a strong edge."""
    h, w = mag.shape
    hits = total = 0
    for i in range(4):
        p, q = quad[i], quad[(i + 1) % 4]
        for t in np.linspace(0.05, 0.95, 24):
            x, y = p + t * (q - p)
            xi, yi = int(round(x)), int(round(y))
            if 1 <= xi < w - 1 and 1 <= yi < h - 1:
                total += 1
                hits += mag[yi - 1 : yi + 2, xi - 1 : xi + 2].max() > 40
    return hits / total if total else 0.0


def _shape_score(quad: np.ndarray, kind: str | None) -> tuple[float, str]:
    side = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    if side.min() < 10:
        return 0.0, "id1"
    long_, short = (
        max(side[0] + side[2], side[1] + side[3]),
        min(side[0] + side[2], side[1] + side[3]),
    )
    ratio = long_ / short
    if not cv2.isContourConvex(quad.astype(np.float32).reshape(-1, 1, 2)):
        return 0.0, "id1"
    # opposite sides of a card seen under moderate perspective are similar
    para = (
        min(side[0], side[2])
        / max(side[0], side[2])
        * min(side[1], side[3])
        / max(side[1], side[3])
    )
    kinds = [kind] if kind else ["id1", "td3"]
    best = min(kinds, key=lambda k: abs(np.log(ratio / ASPECT[k])))
    fit = float(np.exp(-abs(np.log(ratio / ASPECT[best])) / 0.15))
    return fit * para, best


# --- refinement ------------------------------------------------------------------


def _refine(gray: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Move each side onto the outermost strong edge nearby, at full resolution
    (inner edges such as a header band can be stronger than the card's own)."""
    h, w = gray.shape
    centre = quad.mean(0)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    reach = max(5.0, 0.02 * max(h, w))
    lines = []
    for i in range(4):
        p, q = quad[i], quad[(i + 1) % 4]
        d = (q - p) / (np.linalg.norm(q - p) + 1e-9)
        n = np.array([-d[1], d[0]])
        if n @ ((p + q) / 2 - centre) < 0:
            n = -n  # outward
        offs = np.arange(-reach, reach + 1, 1.0)
        pts = []
        for t in np.linspace(0.04, 0.96, 40):
            base = p + t * (q - p)
            samples = base[None, :] + offs[:, None] * n[None, :]
            xs, ys = samples[:, 0], samples[:, 1]
            ok = (xs >= 1) & (xs < w - 1) & (ys >= 1) & (ys < h - 1)
            if ok.sum() < len(offs):
                continue
            xi, yi = xs.astype(np.int32), ys.astype(np.int32)
            g = np.abs(gx[yi, xi] * n[0] + gy[yi, xi] * n[1])
            peak = float(g.max())
            if peak < 20:
                continue
            local = (g[1:-1] >= g[:-2]) & (g[1:-1] >= g[2:]) & (g[1:-1] > 0.4 * peak)
            k = int(np.flatnonzero(local)[-1]) + 1 if local.any() else int(g.argmax())
            # sub-pixel peak by a parabola through the neighbours
            off = offs[k]
            if 0 < k < len(g) - 1:
                den = g[k - 1] - 2 * g[k] + g[k + 1]
                if den < 0:
                    off += 0.5 * (g[k - 1] - g[k + 1]) / den
            pts.append(base + off * n)
        if len(pts) >= 6:
            fit = cv2.fitLine(np.array(pts, np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01)
            lines.append(fit.ravel().astype(np.float64))
        else:
            lines.append(_line_through(p, q))
    out = []
    for i in range(4):
        pt = _intersect(lines[i - 1], lines[i])
        if pt is None:
            return quad
        out.append(pt)
    refined = np.array(out)
    # refuse a refinement that jumps: keep the coarse corners then
    if np.abs(refined - quad).max() > 3 * reach:
        return quad
    return refined


def detect_document(frame: np.ndarray, kind: str | None = None) -> Detection | None:
    """Find the document (ID-1 card or TD3 page) in a BGR frame, or None."""
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("detect_document needs a BGR image of shape (h, w, 3)")
    h, w = frame.shape[:2]
    scale = WORK_WIDTH / w if w > WORK_WIDTH else 1.0
    small = (
        cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        if scale < 1
        else frame
    )
    sh, sw = small.shape[:2]

    edges = np.maximum(*_edge_maps(small))
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    grad = (
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) / 4,
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) / 4,
    )
    quads = [_line_quads(_hough_lines(edges), sw, sh)]
    contour_quads = _candidates(small)
    if contour_quads:
        quads.append(np.array(contour_quads, np.float64))
    allq = np.concatenate(quads)
    if not len(allq):
        return None
    allq = _plausible(allq, sw, sh)
    if not len(allq):
        return None
    scores, td3 = _score_quads(allq, grad, kind)
    # the outermost of the well-supported outlines: inner frames (portrait,
    # hologram patch, header band) also look like documents
    top = float(scores.max())
    good = np.flatnonzero(scores >= 0.7 * top)
    k = int(good[np.argmax(_areas(allq[good]))])
    best_score = float(scores[k])
    if best_score < 0.3:
        return None
    best = order_corners(allq[k])
    best_kind = "td3" if td3[k] else "id1"

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    corners = _refine(gray, best / scale)
    corners = order_corners(corners)
    return Detection(
        corners.astype(np.float32),
        best_kind,
        float(min(1.0, best_score)),
        _visible_share(corners, w, h),
    )


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
