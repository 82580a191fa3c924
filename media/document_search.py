"""Search a scaled frame for a document's outline.

Long straight edges are found with Canny and a probabilistic Hough transform and
merged into lines. Outlines are made of two pairs of roughly parallel lines, or
of three lines and a fourth side completed beyond the frame edge from the ID-1
or TD3 proportions, and scored (media.document_score) from the edge support
along their lines.
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
    outside,
    visible_share,
)
from media.document_score import Sides, Support, score_outlines

HOUGH_LIMIT = 64  # longest lines from the Hough transform
LINE_LIMIT = 24  # of which the most coherent are kept
# px of gap a Hough segment bridges: its walk along a line a fraction of a
# degree off the accumulator's angle drifts off the pixels, and at 5 px a long,
# slightly turned card side broke into pieces too short to keep
MAX_GAP = 8
MERGE_SIN = 0.035  # segments within 2 degrees and MERGE_DIST px form one line
MERGE_DIST = 2.0  # px at 640 px width
# measured on rendered scenes: 5 keeps a grey desk's colour noise out of the
# edges and costs no detection (6 lost 0.4 %)
SAT_NOISE_GAIN = 5.0
# how far outside the frame the joining side's ends may lie for a completed
# outline, share of the frame's short side
NEAR_MARGIN = 0.15
PRUNE = 0.2  # edge score below which an outline cannot win
MIN_SCORE = 0.3  # no document below this score
# print inside an outline (see _print_inside): a grid point counts where more
# than PRINT_EDGE of the 7 x 7 pixels around it are edge; PRINT_SHARE of the
# points do on documents (specimens and drawn cards: 19 % at the least)
PRINT_EDGE = 0.02
PRINT_SHARE = 0.12
# outlines within this share of the best score compete on the area in view:
# inner frames (portrait, hologram patch, header band) also look like documents
# (measured on rendered scenes: 0.7 and 1.0 lost 1 %, 0.85 lost a card to its
# portrait frame)
GOOD = 0.8
SAME_VIEW = 0.97  # share of the largest area in view that counts as as large
# a completed outline gives way to a whole one on the same sides down to this
# share of its score: a fourth side seen beats one guessed from proportions
FAIR = 0.7


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


def edge_maps(small: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canny edges of grey and saturation (a card can differ from the desk in
    either) and the blurred grey and saturation frames."""
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
    return thin, gray, sat


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


# --- search ------------------------------------------------------------------------


def _coherent(
    lines: np.ndarray,
    grad: tuple[np.ndarray, np.ndarray],
    sat: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The LINE_LIMIT lines with the most edge of one polarity along them,
    favouring lines that are edge over most of their length: a row of print
    also makes long lines, but its glyphs' edges flip polarity or leave gaps,
    and a long line across clutter outweighs a small card's short side."""
    rough = Support(lines, grad, step=4, sat=sat)
    coherent = rough.coherent()
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


def _gradient(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.25),
        cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.25),
    )


def _quad_sides(
    small: np.ndarray, quads: np.ndarray
) -> tuple[Sides, tuple[np.ndarray, np.ndarray]]:
    """Outlines (Q, 4, 2) in the scaled frame as the search's Sides."""
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    grad = _gradient(gray)
    p = quads.reshape(-1, 2)
    q = np.roll(quads, -1, axis=1).reshape(-1, 2)
    normal = _unit_normals(q - p)
    lines = np.c_[normal, np.einsum("si,si->s", normal, p)]
    on = np.arange(len(lines)).reshape(-1, 4)
    return Sides(quads, on, Support(lines, grad)), grad


def overshoots(small: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """For whole outlines (Q, 4, 2) in the scaled frame, the search's factor
    0..1 that is low where a side's edge runs on past a corner in view."""
    return _quad_sides(small, quads)[0].overshoot(near_only=False)[0]


def score_quads(small: np.ndarray, quads: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """The search's scores of outlines (Q, 4, 2) in the scaled frame; `cut`
    marks those partly outside the frame (their proportions are not judged)."""
    sides, grad = _quad_sides(small, quads)
    return score_outlines(sides, grad, None, cut)[0]


def search(small: np.ndarray, kind: str | None) -> Outline | None:
    """The best outline in a frame scaled to about 640 px width, or None."""
    sh, sw = small.shape[:2]
    thin, gray, sat = edge_maps(small)
    grad = _gradient(gray)
    lines = hough_lines(thin)
    if len(lines) < 3:
        return None
    sat_grad = _gradient(sat)
    lines = _coherent(lines, grad, sat_grad)
    quads, on, cut = _candidates(lines, sw, sh, kind)

    # the full scoring only for the outlines whose sides are supported at all
    sides = Sides(quads, on, Support(lines, grad, sat=sat_grad))
    keep = np.flatnonzero(sides.edge_score() >= PRUNE)
    if not len(keep):
        return None
    quads, on, cut, sides = quads[keep], on[keep], cut[keep], sides.subset(keep)
    scores, td3 = score_outlines(sides, grad, kind, cut, relative=True)
    able = np.flatnonzero(scores >= MIN_SCORE)
    if not len(able):
        return None
    scores[able] *= _print_inside(thin, quads[able])
    if float(scores.max()) < MIN_SCORE:
        return None

    k = _choose(quads, on, cut, scores, sw, sh)
    kind_k = "td3" if td3[k] else "id1"
    return Outline(quads[k], float(scores[k]), kind_k, bool(cut[k]))


def _print_inside(thin: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """0..1 per outline: whether it has print inside. A document carries text
    and a portrait; a flat patch of clutter with a document's proportions
    has no edges within. The share of points on an 8 x 8 grid over the
    outline's middle (15 % in from its sides, in view) near some edge."""
    h, w = thin.shape
    near = cv2.blur((thin > 0).astype(np.float32), (7, 7)) > PRINT_EDGE
    u = np.linspace(0.15, 0.85, 8)
    a, b = (g.ravel() for g in np.meshgrid(u, u))
    weights = np.stack([(1 - a) * (1 - b), a * (1 - b), a * b, (1 - a) * b], 1)
    pts = np.einsum("gk,qki->qgi", weights, quads)
    x, y = np.rint(pts[..., 0]), np.rint(pts[..., 1])
    seen = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    xi = np.clip(x, 0, w - 1).astype(np.int32)
    yi = np.clip(y, 0, h - 1).astype(np.int32)
    share = (near[yi, xi] & seen).sum(1) / np.maximum(seen.sum(1), 1)
    return np.clip(share / PRINT_SHARE, 0, 1)


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
    # about as much in view (completions of the same three sides beyond the
    # frame show the same part): the better score
    outer = good[np.asarray(shown) >= SAME_VIEW * max(shown)]
    k = int(outer[np.argmax(scores[outer])])
    if cut[k]:
        seen = set(on[k].tolist()) - {-1}
        fair = np.flatnonzero(scores >= FAIR * float(scores[k]))
        whole = [int(g) for g in fair if not cut[g] and seen <= set(on[g].tolist())]
        if whole:
            k = max(whole, key=lambda g: float(scores[g]))
    return k
