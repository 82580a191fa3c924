"""Search a scaled frame for a document's outline.

Long straight edges are found with Canny and a probabilistic Hough transform and
merged into lines; each line's edge support (a strong step across it, and its
polarity) is sampled once along its whole length. Outlines are made of two
pairs of roughly parallel lines, or of three lines and a fourth side completed
beyond the frame edge from the ID-1 or TD3 proportions; each is scored from the
lines' cumulative support between its corners, so that thousands of outlines
cost little more than one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from media.document_geometry import (
    ASPECT,
    areas,
    complete,
    meet,
    metric_ratios,
    outside,
    visible_share,
)

# measured on rendered scenes: 5 keeps a grey desk's colour noise out of the
# edges and costs no detection (6 lost 0.4 %)
SAT_NOISE_GAIN = 5.0
# px of gap a Hough segment bridges: its walk along a line a fraction of a
# degree off the accumulator's angle drifts off the pixels, and at 5 px a long,
# slightly turned card side broke into pieces too short to keep
MAX_GAP = 8

# how far outside the frame the joining side's ends may lie for a completed
# outline, share of the frame's short side
NEAR_MARGIN = 0.15
HOUGH_LIMIT = 64  # longest lines from the Hough transform
LINE_LIMIT = 24  # of which the most coherent are kept
MERGE_SIN = 0.035  # segments within 2 degrees and MERGE_DIST px form one line
MERGE_DIST = 2.0  # px at 640 px width
STRONG = 12.0  # grey levels per pixel across an edge (Sobel / 4 on a blurred frame)
END_SHARE = 0.15  # share of a side at each end that must be supported
TAIL = 10.0  # px before a side leaves the frame that must be supported
MIN_SEEN = 8  # px of a side in view to count it
# an end without support costs 70 %, not all: clutter of the document's own
# brightness can hide a corner (measured: 0 lost 1 %, 0.5 no better than 0.3)
END_FLOOR = 0.3
PRUNE = 0.2  # edge score below which an outline cannot win
# outlines within this share of the best score compete on the area in view:
# inner frames (portrait, hologram patch, header band) also look like documents
GOOD = 0.85


@dataclass(frozen=True)
class Outline:
    """A candidate outline in the scaled frame: corners, score, whether it was
    completed beyond the frame edge (corners A, B, B', A'), kind by its shape."""

    corners: np.ndarray
    score: float
    kind: str
    cut: bool


def _median(chan: np.ndarray) -> float:
    """Median of a uint8 image from its histogram (np.median sorts)."""
    hist = cv2.calcHist([chan], [0], None, [256], [0, 256]).ravel()
    return float(np.searchsorted(np.cumsum(hist), chan.size / 2))


def edge_maps(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canny edges of grey and saturation (a card can differ from the desk in
    either) and the blurred grey frame."""
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    sat = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[..., 1], (5, 5), 0)
    thin = np.zeros(gray.shape, np.uint8)
    for chan in (gray, sat):
        med = _median(chan)
        low, high = max(10.0, 0.5 * med), max(30.0, 1.2 * med)
        if chan is sat:
            # the saturation of dark grey pixels is mostly sensor noise: edges
            # must stand out from the channel's typical gradient
            high = max(high, SAT_NOISE_GAIN * _gradient_median(chan))
            low = max(low, 0.5 * high)
        thin = np.maximum(thin, cv2.Canny(chan, low, high))
    return thin, gray


def _gradient_median(chan: np.ndarray) -> float:
    """Median of the L1 Sobel gradient that Canny compares with its thresholds
    (in steps of 8)."""
    gx = cv2.convertScaleAbs(cv2.Sobel(chan, cv2.CV_16S, 1, 0), alpha=0.125)
    gy = cv2.convertScaleAbs(cv2.Sobel(chan, cv2.CV_16S, 0, 1), alpha=0.125)
    return 8.0 * _median(cv2.add(gx, gy))


# --- lines -------------------------------------------------------------------------


def _unit_normals(d: np.ndarray) -> np.ndarray:
    """Unit normals of directions (N, 2), pointing to positive x (or y)."""
    n = np.stack([-d[:, 1], d[:, 0]], 1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    flip = (n[:, 0] < 0) | ((n[:, 0] == 0) & (n[:, 1] < 0))
    n[flip] *= -1
    return n


def _merge(segs: np.ndarray, tol: float) -> np.ndarray:
    """Collinear segments (S, 4), longest first, merged into lines: each
    segment joins the first longer one whose line runs within 2 degrees and
    `tol` px of both its end points. Each line is refitted to the end points of
    its segments weighted by their length; rows a, b, c, length, centroid."""
    p, q = segs[:, :2], segs[:, 2:]
    d = q - p
    length = np.hypot(d[:, 0], d[:, 1])
    n = _unit_normals(d)
    c = np.einsum("si,si->s", n, p)
    # fits[i, j]: segment j lies along segment i's line
    turn = np.abs(n @ d.T) / length[None, :]
    dist_p = np.abs(n @ p.T - c[:, None])
    dist_q = np.abs(n @ q.T - c[:, None])
    fits = (turn < MERGE_SIN) & (dist_p < tol) & (dist_q < tol)
    label = np.full(len(segs), -1)
    heads = 0
    for i in range(len(segs)):
        if label[i] < 0:
            label[fits[i] & (label < 0)] = heads
            label[i] = heads
            heads += 1

    # length-weighted moments of the end points, per line
    wt = np.r_[length, length] / 2
    x, y = np.r_[p[:, 0], q[:, 0]], np.r_[p[:, 1], q[:, 1]]
    lab = np.r_[label, label]
    mom = np.stack(
        [
            np.bincount(lab, v, minlength=heads)
            for v in (wt, wt * x, wt * y, wt * x * x, wt * x * y, wt * y * y)
        ],
        1,
    )
    w = mom[:, 0]
    mx, my = mom[:, 1] / w, mom[:, 2] / w
    sxx = mom[:, 3] / w - mx * mx
    sxy = mom[:, 4] / w - mx * my
    syy = mom[:, 5] / w - my * my
    # the line runs along the major axis of the points' spread
    major = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    normal = _unit_normals(np.stack([np.cos(major), np.sin(major)], 1))
    total = np.bincount(label, length, minlength=heads)
    c = normal[:, 0] * mx + normal[:, 1] * my
    return np.column_stack([normal, c, total, mx, my])


def hough_lines(thin: np.ndarray) -> np.ndarray:
    """Long straight edges as lines, the longest first: rows a, b, c, length,
    centroid x, y."""
    h, w = thin.shape
    segs = cv2.HoughLinesP(
        thin, 1, np.pi / 180, 25, minLineLength=0.07 * w, maxLineGap=MAX_GAP
    )
    if segs is None:
        return np.zeros((0, 6))
    segs = segs.reshape(-1, 4).astype(np.float64)
    length = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    segs = segs[np.argsort(-length)[: 4 * HOUGH_LIMIT]]
    lines = _merge(segs, MERGE_DIST * w / 640)
    return lines[np.argsort(-lines[:, 3])[:HOUGH_LIMIT]]


# --- edge support along the lines ----------------------------------------------


def frame_span(
    origin: np.ndarray, along: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """Parameters where lines origin + t * along enter and leave the frame
    [0, w - 1] x [0, h - 1]; equal where a line misses it."""
    lo, hi = np.full(len(origin), -np.inf), np.full(len(origin), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, limit in ((0, w - 1.0), (1, h - 1.0)):
            dv, pv = along[:, axis], origin[:, axis]
            ta, tb = (0.0 - pv) / dv, (limit - pv) / dv
            flat = np.abs(dv) < 1e-12
            inside = (pv >= 0) & (pv <= limit)
            ta = np.where(flat, np.where(inside, -np.inf, np.inf), ta)
            tb = np.where(flat, np.where(inside, np.inf, -np.inf), tb)
            lo = np.maximum(lo, np.minimum(ta, tb))
            hi = np.minimum(hi, np.maximum(ta, tb))
    lo = np.where(np.isfinite(lo), lo, 0.0)
    return lo, np.maximum(np.where(np.isfinite(hi), hi, 0.0), lo)


class _Support:
    """Per line, cumulative counts of strong edge samples at 1 px steps over the
    line's part in the frame: `pos` where the grey level rises along the
    line's normal (a, b), `neg` where it falls, `seen` all samples."""

    def __init__(
        self, lines: np.ndarray, grad: tuple[np.ndarray, np.ndarray], step: int = 1
    ):
        gx, gy = grad
        h, w = gx.shape
        a, b, c = lines[:, 0], lines[:, 1], lines[:, 2]
        self.normal = lines[:, :2]
        self.origin = np.stack([a * c, b * c], 1)
        self.along = np.stack([b, -a], 1)
        self.t0, self.t1 = frame_span(self.origin, self.along, w, h)
        span = int(np.ceil((self.t1 - self.t0).max(initial=0.0))) // step + 1
        ts = self.t0[:, None] + step * np.arange(span)[None, :]
        valid = ts <= self.t1[:, None]
        best = np.zeros(ts.shape, np.float32)
        # the strongest step within a pixel of the line
        for off in (-1.0, 0.0, 1.0):
            x = self.origin[:, 0:1] + ts * self.along[:, 0:1] + off * a[:, None]
            y = self.origin[:, 1:2] + ts * self.along[:, 1:2] + off * b[:, None]
            xi = np.clip(np.rint(x), 0, w - 1).astype(np.int32)
            yi = np.clip(np.rint(y), 0, h - 1).astype(np.int32)
            gn = gx[yi, xi] * a[:, None] + gy[yi, xi] * b[:, None]
            best = np.where(np.abs(gn) > np.abs(best), gn, best)
        self.pos = self._cum((best > STRONG) & valid)
        self.neg = self._cum((best < -STRONG) & valid)
        self.seen = self._cum(valid)

    def subset(self, keep: np.ndarray) -> _Support:
        out = _Support.__new__(_Support)
        for name in ("normal", "origin", "along", "t0", "t1", "pos", "neg", "seen"):
            setattr(out, name, getattr(self, name)[keep])
        return out

    @staticmethod
    def _cum(mask: np.ndarray) -> np.ndarray:
        out = np.zeros((len(mask), mask.shape[1] + 1), np.int32)
        np.cumsum(mask, axis=1, out=out[:, 1:])
        return out

    def param(self, line: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Parameter along `line` of the points' projections."""
        return np.einsum("...i,...i->...", pts - self.origin[line], self.along[line])

    def counts(
        self, line: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples (pos, neg, seen) between parameters lo and hi of each line."""
        last = self.pos.shape[1] - 1
        i0 = np.clip(np.ceil(lo - self.t0[line]), 0, last).astype(np.int64)
        i1 = np.clip(np.floor(hi - self.t0[line]) + 1, 0, last).astype(np.int64)
        i1 = np.maximum(i0, i1)
        pos = self.pos[line, i1] - self.pos[line, i0]
        neg = self.neg[line, i1] - self.neg[line, i0]
        return pos, neg, self.seen[line, i1] - self.seen[line, i0]


# --- outlines ----------------------------------------------------------------------


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


def _line_quads(lines: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outlines of two parallel pairs at a wide angle: corners (Q, 4, 2) and
    side lines (Q, 4), side k running from corner k to corner k + 1."""
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    p, q = np.triu_indices(len(pairs), 1)
    pang = ang[pairs[:, 0]]
    sel = np.abs(np.sin(pang[p] - pang[q])) > np.sin(np.radians(50))
    a1, a2 = pairs[p[sel], 0], pairs[p[sel], 1]
    b1, b2 = pairs[q[sel], 0], pairs[q[sel], 1]
    distinct = (a1 != b1) & (a1 != b2) & (a2 != b1) & (a2 != b2)
    side = np.stack([b1, a2, b2, a1], 1)[distinct]
    hl = _homog(lines)
    corners = meet(hl[np.roll(side, 1, axis=1)], hl[side])
    ok = np.isfinite(corners).all(axis=(1, 2))
    return corners[ok], side[ok]


def _cut_quads(
    lines: np.ndarray, pairs: np.ndarray, w: int, h: int, aspects: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Outlines A, B, B', A' from two parallel lines (through A-A' and B-B') and
    a third joining them (A-B), completed beyond the frame edge where the
    completed side lies outside the frame; side lines (Q, 4), -1 for the
    completed side. The joining side may be a short or a long one."""
    empty = np.zeros((0, 4, 2)), np.zeros((0, 4), np.int64)
    if not len(pairs):
        return empty
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    grid = np.meshgrid(np.arange(len(pairs)), np.arange(len(lines)), indexing="ij")
    pi, k = grid[0].ravel(), grid[1].ravel()
    i, j = pairs[pi, 0], pairs[pi, 1]
    sel = np.abs(np.sin(ang[i] - ang[k])) > np.sin(np.radians(50))
    sel &= (k != i) & (k != j)
    i, j, k = i[sel], j[sel], k[sel]
    hl = _homog(lines)
    # the joining side's ends A and B about in view (its other corner may be
    # cut off too)
    margin = NEAR_MARGIN * min(w, h)
    near = ~outside(meet(hl[i], hl[k]), w, h, margin)
    near &= ~outside(meet(hl[j], hl[k]), w, h, margin)
    i, j, k = i[near], j[near], k[near]
    if not len(i):
        return empty
    # the document lies on the side of A-B where line i's edge was seen
    towards = lines[i, 4:6]
    ratios = [r for a in aspects for r in (a, 1 / a)]
    quads, valid = complete(hl[i], hl[j], hl[k], towards, ratios, w, h)
    keep = valid & outside(quads[:, :, 2:], w, h, 2.0).any(2)  # A' or B' outside
    sides = np.stack([k, j, np.full(len(k), -1), i], 1)
    return quads[keep], np.broadcast_to(sides, (len(ratios), *sides.shape))[keep]


def _plausible(quads: np.ndarray, w: int, h: int, cut: bool) -> np.ndarray:
    """Cheap shape filter: document-like proportions and a sensible size."""
    nxt = np.roll(quads, -1, axis=1)
    side = np.linalg.norm(nxt - quads, axis=2)
    a, b = side[:, 0] + side[:, 2], side[:, 1] + side[:, 3]
    ratio = np.maximum(a, b) / (np.minimum(a, b) + 1e-9)
    frac = areas(quads) / (w * h)
    keep = (frac > 0.04) & (frac < (3.0 if cut else 1.2))
    if not cut:
        keep &= (ratio > 1.15) & (ratio < 2.1)
    return keep


# --- scoring -----------------------------------------------------------------------


class _Sides:
    """The sides of outlines (Q, 4, 2) on their lines (Q, 4; -1 for a side
    completed beyond the frame): parameter range, polarity and edge support.

    A side is supported where a strong step runs across it with the polarity
    the outline has on most of its length (inside brighter, or darker, than
    outside; print and patterns flip it).
    """

    def __init__(self, corners: np.ndarray, side: np.ndarray, sup: _Support):
        self.corners, self.sup = corners, sup
        self.has = side >= 0
        self.line = np.where(self.has, side, 0)
        nxt = np.roll(corners, -1, axis=1)
        self.length = np.linalg.norm(nxt - corners, axis=2)
        tp, tq = sup.param(self.line, corners), sup.param(self.line, nxt)
        self.lo, self.hi = np.minimum(tp, tq), np.maximum(tp, tq)
        # the line's normal points out of the outline: falling grey there
        # means the inside is brighter
        centre = corners.mean(1, keepdims=True)
        mid = (corners + nxt) / 2 - centre
        self.flip = np.einsum("qki,qki->qk", sup.normal[self.line], mid) > 0
        pos, neg, seen = sup.counts(self.line, self.lo, self.hi)
        self.seen = seen * self.has
        bright, dark = self._polar(pos, neg)
        self.major = np.sign((bright - dark).sum(1, keepdims=True) + 0.5)
        maj, opp = self._major(bright, dark), self._major(dark, bright)
        self.support = np.clip((maj - opp) / np.maximum(self.seen, 1), 0, 1)
        self.in_view = self.seen >= MIN_SEEN

    def _polar(self, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts (inside brighter, inside darker)."""
        return (
            np.where(self.flip, neg, pos) * self.has,
            np.where(self.flip, pos, neg) * self.has,
        )

    def _major(self, bright: np.ndarray, dark: np.ndarray) -> np.ndarray:
        return np.where(self.major > 0, bright, dark)

    def edge_score(self) -> np.ndarray:
        """Mean support of the sides in view, cut by the weakest one."""
        side_ok = np.where(self.in_view, self.support, 1.0).min(1)
        n = np.maximum(self.in_view.sum(1), 1)
        mean = (self.support * self.in_view).sum(1) / n
        return mean * np.clip(side_ok / 0.5, 0, 1)

    def subset(self, keep: np.ndarray) -> _Sides:
        out = _Sides.__new__(_Sides)
        out.__dict__ = {
            k: v if k == "sup" else v[keep] for k, v in self.__dict__.items()
        }
        return out

    def ends(self) -> np.ndarray:
        """0..1: every side in view is supported at both ends: over a share of
        its length next to a corner in view (an outline that takes a
        background line for a side overshoots the document's corner), or over
        the last pixels before it leaves the frame."""
        sup, lo, hi = self.sup, self.lo, self.hi
        t0, t1 = sup.t0[self.line], sup.t1[self.line]
        reach = END_SHARE * (hi - lo)
        out = np.ones(len(lo))
        # (the frame's outermost pixels have no reliable gradient)
        for corner_in, a, b in (
            (lo >= t0 - 0.5, (lo, t0 + 2), (lo + reach, np.minimum(t0 + 2 + TAIL, hi))),
            (hi <= t1 + 0.5, (hi - reach, np.maximum(t1 - 2 - TAIL, lo)), (hi, t1 - 2)),
        ):
            start = np.where(corner_in, *a)
            stop = np.where(corner_in, *b)
            pos, neg, seen = sup.counts(self.line, start, stop)
            frac = self._major(*self._polar(pos, neg)) / np.maximum(seen, 1)
            fac = np.where(
                corner_in, np.clip(frac / 0.5, 0, 1), np.clip((frac - 0.2) / 0.4, 0, 1)
            )
            fac = np.where(self.in_view & (seen >= 3), fac, 1.0)
            out = np.minimum(out, fac.min(1))
        return END_FLOOR + (1 - END_FLOOR) * out


def _shape(
    corners: np.ndarray,
    length: np.ndarray,
    kind: str | None,
    cut: np.ndarray,
    w: int,
    h: int,
) -> tuple[np.ndarray, np.ndarray]:
    """0..1 for proportions on the document plane near ID-1 or TD3 and
    opposite sides of similar length; and whether TD3 fits better."""
    ratio = metric_ratios(corners, w, h)
    a, b = length[:, 0] + length[:, 2], length[:, 1] + length[:, 3]
    ratio = np.where(
        np.isfinite(ratio), ratio, np.maximum(a, b) / (np.minimum(a, b) + 1e-9)
    )
    fit = {
        k: np.exp(-np.abs(np.log(ratio / ASPECT[k])) / 0.12)
        if kind in (None, k)
        else np.zeros(len(corners))
        for k in ASPECT
    }
    shape = 0.4 + 0.6 * np.maximum(fit["id1"], fit["td3"])
    para = (
        np.minimum(length[:, 0], length[:, 2])
        / (np.maximum(length[:, 0], length[:, 2]) + 1e-9)
        * np.minimum(length[:, 1], length[:, 3])
        / (np.maximum(length[:, 1], length[:, 3]) + 1e-9)
    )
    return np.where(cut, 1.0, shape * para), fit["td3"] > fit["id1"]


def _score(
    sides: _Sides,
    grad: tuple[np.ndarray, np.ndarray],
    kind: str | None,
    cut: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Edge support, shape and size of each outline: (scores, is_td3)."""
    h, w = grad[0].shape
    corners = sides.corners
    shape, td3 = _shape(corners, sides.length, kind, cut, w, h)
    frac_area = areas(corners) / (w * h)
    view = sides.seen.sum(1) / np.maximum(sides.length.sum(1), 1)
    nxt = np.roll(corners, -1, axis=1)
    e1, e2 = nxt - corners, np.roll(corners, -2, axis=1) - nxt
    turn = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    convex = np.all(turn > 0, axis=1) | np.all(turn < 0, axis=1)
    score = (
        sides.edge_score()
        * sides.ends()
        * shape
        * np.clip(frac_area / 0.08, 0, 1) ** 0.3
        * np.clip(view / 0.6, 0, 1)
    )
    if cut.any():
        score[cut] *= _open_side(corners[cut], grad, sides.major[cut, 0])
    score[~convex | (sides.in_view.sum(1) < 3)] = 0
    return score, td3


def _open_side(
    quads: np.ndarray, grad: tuple[np.ndarray, np.ndarray], major: np.ndarray
) -> np.ndarray:
    """For outlines A, B, B', A' completed beyond the frame: a factor 0..1 that
    is low where the completed side B'-A' lies in view without an edge there
    (the document ends elsewhere in view)."""
    gx, gy = grad
    h, w = gx.shape
    p, q = quads[:, 2], quads[:, 3]
    t = np.linspace(0.03, 0.97, 24)
    pts = p[:, None, :] + t[None, :, None] * (q - p)[:, None, :]
    d = (q - p) / (np.linalg.norm(q - p, axis=1, keepdims=True) + 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], 1)
    centre = quads.mean(1)
    normal *= np.sign(np.einsum("qi,qi->q", normal, (p + q) / 2 - centre))[:, None]
    inside = (pts[..., 0] >= 2) & (pts[..., 0] < w - 2)
    inside &= (pts[..., 1] >= 2) & (pts[..., 1] < h - 2)
    best = np.zeros(pts.shape[:2], np.float32)
    for off in (-1.0, 0.0, 1.0):
        pp = pts + off * normal[:, None, :]
        xi = np.clip(np.rint(pp[..., 0]), 0, w - 1).astype(np.int32)
        yi = np.clip(np.rint(pp[..., 1]), 0, h - 1).astype(np.int32)
        gn = gx[yi, xi] * normal[:, None, 0] + gy[yi, xi] * normal[:, None, 1]
        best = np.where(np.abs(gn) > np.abs(best), gn, best)
    # inside brighter (major > 0): the grey level falls outward
    good = (best * -major[:, None] > STRONG) & inside
    share = inside.mean(1)
    frac = good.sum(1) / np.maximum(inside.sum(1), 1)
    return np.where(share >= 0.15, np.clip(frac / 0.5, 0, 1), 1.0)


# --- search ------------------------------------------------------------------------


def _coherent(lines: np.ndarray, grad: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The LINE_LIMIT lines with the most edge of one polarity along them,
    favouring lines that are edge over most of their length: a row of print
    also makes long lines, but its glyphs' edges flip polarity or leave gaps,
    and a long line across clutter outweighs a small card's short side."""
    rough = _Support(lines, grad, step=4)
    coherent = np.abs(rough.pos[:, -1] - rough.neg[:, -1])
    share = coherent / np.maximum(rough.seen[:, -1], 1)
    rank = coherent * np.sqrt(share)
    # half of them across the best line's direction: rows of print are many
    # and parallel, and would crowd out a card's other pair of sides
    order = np.argsort(-rank)
    ang = np.arctan2(lines[:, 1], lines[:, 0])
    turn = np.abs(np.sin(ang - ang[order[0]]))
    across = turn[order] > np.sin(np.radians(45))
    half = LINE_LIMIT // 2
    a, b = order[~across], order[across]
    na = max(half, LINE_LIMIT - len(b))
    keep = np.r_[a[:na], b[: LINE_LIMIT - min(na, len(a))]]
    return lines[np.sort(keep)]


def _candidates(
    lines: np.ndarray, w: int, h: int, kind: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plausible outlines: corners (Q, 4, 2), side lines (Q, 4), completed."""
    pairs = _parallel_pairs(lines, w, h)
    wq, ws = _line_quads(lines, pairs)
    keep = _plausible(wq, w, h, cut=False)
    wq, ws = wq[keep], ws[keep]
    aspects = [ASPECT[k] for k in ([kind] if kind else ASPECT)]
    cq, cs = _cut_quads(lines, pairs, w, h, aspects)
    keep = _plausible(cq, w, h, cut=True)
    cq, cs = cq[keep], cs[keep]
    cut = np.r_[np.zeros(len(wq), bool), np.ones(len(cq), bool)]
    return np.concatenate([wq, cq]), np.concatenate([ws, cs]), cut


def search(small: np.ndarray, kind: str | None) -> Outline | None:
    """The best outline in a frame scaled to about 640 px width, or None."""
    sh, sw = small.shape[:2]
    thin, gray = edge_maps(small)
    grad = (
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.25),
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.25),
    )
    lines = hough_lines(thin)
    if len(lines) < 3:
        return None
    lines = _coherent(lines, grad)
    quads, on, cut = _candidates(lines, sw, sh, kind)

    # the full scoring only for the outlines whose sides are supported at all
    sides = _Sides(quads, on, _Support(lines, grad))
    keep = np.flatnonzero(sides.edge_score() >= PRUNE)
    if not len(keep):
        return None
    quads, on, cut, sides = quads[keep], on[keep], cut[keep], sides.subset(keep)
    scores, td3 = _score(sides, grad, kind, cut)
    top = float(scores.max())
    if top < 0.3:
        return None

    k = _choose(quads, on, cut, scores, sw, sh)
    kind_k = "td3" if td3[k] else "id1"
    return Outline(quads[k], float(scores[k]), kind_k, bool(cut[k]))


def _choose(
    quads: np.ndarray,
    on: np.ndarray,
    cut: np.ndarray,
    scores: np.ndarray,
    w: int,
    h: int,
) -> int:
    """The outermost of the best outlines (a completed one counts its part in
    view); a completed outline gives way to one that sees its three sides and
    a fourth in view, which explains more of the frame."""
    good = np.flatnonzero(scores >= GOOD * float(scores.max()))
    shown = [visible_share(q, w, h) for q in quads[good]] * areas(quads[good])
    k = int(good[np.argmax(shown)])
    if cut[k]:
        seen = set(on[k].tolist()) - {-1}
        whole = [int(g) for g in good if not cut[g] and seen <= set(on[g].tolist())]
        if whole:
            k = max(whole, key=lambda g: float(scores[g]))
    return k
