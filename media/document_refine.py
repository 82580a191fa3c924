"""Move an outline's sides onto the document's edges, at full resolution.

Each side is sampled with grey-level profiles across it; the side's new line runs
through the outermost edge that most profiles share. A side that cannot be seen
because it lies outside the frame is completed from the other three and the
document's proportions (ID-1 or TD3, told apart by the MRZ when unknown).
"""

from __future__ import annotations

import cv2
import numpy as np

from media.document_geometry import ASPECT, areas, complete, homog_line, meet, outside
from media.document_kind import mrz_kind

# after a search a side is refined this share of the document's extent to either
# side: a coarse side on the first of three MRZ lines lies about 21 % inside the
# outline (measured: 0.12 lost cut-off documents, 0.2 gained nothing over 0.15)
REFINE_REACH = 0.15
EDGE_MIN = 4.0  # grey levels per pixel across an outline
PROFILES = 32  # profiles across each side
OFF_FRAME = 1e6  # marks profile samples outside the frame

Lines = list[np.ndarray | None]


def _side_samples(
    gray: np.ndarray, p: np.ndarray, q: np.ndarray, n: np.ndarray, reach: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey-level profiles across the side p-q (outward normal n): base points
    (K, 2), offsets (M,) and the gradient along n at the offsets (K, M); rows
    are NaN where the side itself is out of the frame, samples OFF_FRAME where
    the profile is."""
    h, w = gray.shape
    d = (q - p) / (np.linalg.norm(q - p) + 1e-9)
    offs = np.arange(-reach - 1, reach + 2, 1.0)
    base = p[None, :] + np.linspace(0.04, 0.96, PROFILES)[:, None] * (q - p)[None, :]
    # three profiles 1.5 px apart along the side, summed against sensor noise
    along = np.array([-1.5, 0.0, 1.5])
    maps = [
        (base[None, :, None, i] + along[:, None, None] * d[i] + offs * n[i])
        .astype(np.float32)
        .reshape(3 * len(base), -1)
        for i in (0, 1)
    ]
    prof = cv2.remap(
        gray, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    k = len(base)
    prof = prof[:k] + prof[k : 2 * k] + prof[2 * k :]
    grad = (prof[:, 2:] - prof[:, :-2]) / 6
    x, y = maps[0][k : 2 * k, 1:-1], maps[1][k : 2 * k, 1:-1]
    grad[(x < 1) | (x > w - 2) | (y < 1) | (y > h - 2)] = OFF_FRAME
    grad[~((base >= 1) & (base < [w - 1, h - 1])).all(1)] = np.nan
    return base, offs[1:-1], grad


def _median(values: np.ndarray) -> float:
    flat = values.ravel()
    return float(np.partition(flat, len(flat) // 2)[len(flat) // 2])


def _fit_side(
    base: np.ndarray, offs: np.ndarray, grad: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray | None, float]:
    """A line (homogeneous) through the side's edge, and the share of profiles
    that show it. The edge is the outermost one that at least half the profiles
    share: inner edges such as a header band or an MRZ line can be stronger than
    a low-contrast outline, and clutter outside is not shared along the side."""
    rows = np.flatnonzero(~np.isnan(grad[:, 0]))
    seen = grad[rows] != OFF_FRAME
    g = np.abs(grad[rows]) * seen
    rising = grad[rows] > 0
    peak = g.max(1, initial=0.0)
    local = np.zeros(g.shape, bool)
    local[:, 1:-1] = (g[:, 1:-1] >= g[:, :-2]) & (g[:, 1:-1] >= g[:, 2:])
    # above sensor noise: most of a profile is flat, so its median gradient
    # measures the noise (1.48 * MAD is sigma for Gaussian noise)
    noise = 1.48 * _median(g[seen]) if seen.any() else 0.0
    local &= (g >= max(EDGE_MIN, 4.0 * noise)) & (g > 0.15 * peak[:, None])
    target, pol = _shared_edge(local, rising, seen)
    local &= rising == pol
    dist = np.where(local, np.abs(np.arange(g.shape[1]) - target), np.inf)
    k = dist.argmin(1)
    ok = dist[np.arange(len(k)), k] <= 3.0
    share = float(ok.sum()) / max(len(rows), 1)
    if ok.sum() < 6:
        return None, share

    # sub-pixel peaks, and a line through them
    r, k = np.flatnonzero(ok), k[ok]
    g = g[r]
    last = g.shape[1] - 1
    idx = np.arange(len(k))
    gm, g0 = g[idx, np.maximum(k - 1, 0)], g[idx, k]
    gp = g[idx, np.minimum(k + 1, last)]
    den = gm - 2 * g0 + gp
    inner = (k > 0) & (k < last) & (den < 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sub = np.where(inner, 0.5 * (gm - gp) / den, 0.0)
    pts = base[rows[r]] + (offs[k] + sub)[:, None] * n[None, :]
    vx, vy, x0, y0 = cv2.fitLine(
        pts.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01
    ).ravel()
    return np.cross([x0, y0, 1.0], [x0 + vx, y0 + vy, 1.0]), share


def _shared_edge(
    local: np.ndarray, rising: np.ndarray, seen: np.ndarray
) -> tuple[int, bool]:
    """The offset index of the outermost edge that at least half the profiles
    in view there share (within 2 samples) and its polarity; the best-shared
    edge when none is shared by half."""
    if not local.size:
        return 0, True
    m = local.shape[1]
    kernel = np.ones((1, 5), np.uint8)
    # a side that runs out of the frame is seen by fewer profiles further out
    in_view = cv2.dilate(seen.astype(np.uint8), kernel).sum(0)
    enough = in_view >= max(6, 0.25 * len(local))
    best: tuple[float, int, bool] = (-np.inf, 0, True)
    for pol in (True, False):
        hits = (local & (rising == pol)).astype(np.uint8)
        support = cv2.dilate(hits, kernel).sum(0) / np.maximum(in_view, 1) * enough
        shared = np.flatnonzero(support >= 0.5)
        if len(shared):
            k = int(shared[-1])
            rank = 2.0 + k / m + support[k] / (4 * m)
        else:
            k = int(support.argmax())
            rank = float(support[k])
        best = max(best, (rank, k, pol))
    return best[1], best[2]


def refine_lines(
    gray: np.ndarray, quad: np.ndarray, reach: float, rel_reach: float = 0.0
) -> tuple[Lines, np.ndarray]:
    """Refitted side lines (None where a side is out of view) and their support;
    each side is searched `reach` px, or `rel_reach` of the document's extent
    across it, to either side."""
    centre = quad.mean(0)
    lines: Lines = []
    support = np.zeros(4)
    for i in range(4):
        p, q = quad[i], quad[(i + 1) % 4]
        d = (q - p) / (np.linalg.norm(q - p) + 1e-9)
        n = np.array([-d[1], d[0]])
        if n @ ((p + q) / 2 - centre) < 0:
            n = -n  # outward
        extent = abs(float(n @ ((p + q) / 2 - centre))) * 2
        band = max(reach, rel_reach * extent)
        line, support[i] = _fit_side(*_side_samples(gray, p, q, n, band), n)
        lines.append(line)
    return lines, support


def corners_from_lines(
    gray: np.ndarray, lines: Lines, quad: np.ndarray, kind: str | None
) -> tuple[np.ndarray, str | None, bool]:
    """Corners from refitted lines; a side without a line keeps its coarse
    position, or is completed from the proportions when it lies outside the
    frame. Returns (corners, kind when completed, completed)."""
    h, w = gray.shape
    hl = [
        ln if ln is not None else homog_line(quad[i], quad[(i + 1) % 4])
        for i, ln in enumerate(lines)
    ]
    missing = [i for i, ln in enumerate(lines) if ln is None]
    if len(missing) == 1:
        m = missing[0]
        if outside((quad[(m + 1) % 4] + quad[m]) / 2, w, h, 0.0):
            return _complete_side(gray, hl, quad, m, kind)
    return meet(np.array(hl[-1:] + hl[:-1]), np.array(hl)), None, False


def _complete_side(
    gray: np.ndarray, hl: list[np.ndarray], quad: np.ndarray, m: int, kind: str | None
) -> tuple[np.ndarray, str | None, bool]:
    """Replace side m (out of view) by the completion of the other three."""
    h, w = gray.shape
    s = (m + 2) % 4  # the opposite, visible side
    l1, l2 = hl[(s - 1) % 4], hl[(s + 1) % 4]
    short = np.linalg.norm(quad[(s + 1) % 4] - quad[s]) < np.linalg.norm(
        quad[(s + 2) % 4] - quad[(s + 1) % 4]
    )
    towards = ((quad[(m + 1) % 4] + quad[m]) / 2)[None, :]
    options: dict[str, tuple[np.ndarray, bool]] = {}
    for k in [kind] if kind else list(ASPECT):
        ratio = ASPECT[k] if short else 1 / ASPECT[k]
        quads, valid = complete(l1[None], l2[None], hl[s][None], towards, [ratio], w, h)
        if valid[0, 0]:
            # the far side is not in view (1 % slack for the corners' error)
            quad = quads[0, 0]
            slack = -0.01 * float(np.linalg.norm(quad[2] - quad[1]))
            options[k] = (quad, bool(outside(quad[2:], w, h, slack).any()))
    if not options:
        return meet(np.array(hl[-1:] + hl[:-1]), np.array(hl)), None, False
    chosen = kind or _cut_kind(gray, options, short)
    a, b, b2, a2 = options[chosen][0]
    # back into the quad's own order: side s runs from corner s to corner s+1
    out = np.zeros((4, 2))
    out[s], out[(s + 1) % 4], out[(s + 2) % 4], out[(s + 3) % 4] = a, b, b2, a2
    return out, chosen, True


def _cut_kind(
    gray: np.ndarray, options: dict[str, tuple[np.ndarray, bool]], short: bool
) -> str:
    """The kind of a cut-off document: the completions whose far side is out of
    view are possible; among them the MRZ's pitch decides, and without an MRZ
    in view an outline whose long sides are in view is an ID-1 card (a TD3
    page always carries its MRZ along a long side)."""
    possible = [k for k, (_, out) in options.items() if out] or list(options)
    if len(possible) == 1:
        return possible[0]
    evidence = mrz_kind(gray, options["id1"][0], ASPECT["id1"], short)
    return evidence or "id1"


def refine(
    gray: np.ndarray, quad: np.ndarray, kind: str | None, reach: float
) -> tuple[np.ndarray, str | None, bool, np.ndarray]:
    """Sides moved onto the outermost strong edge nearby; (corners, completed
    kind, completed, support). A refinement that jumps is refused."""
    extent = float(np.sqrt(areas(quad[None])[0]))
    lines, support = refine_lines(gray, quad, reach, rel_reach=REFINE_REACH)
    corners, ckind, completed = corners_from_lines(gray, lines, quad, kind)
    if not np.isfinite(corners).all() or (
        not completed and np.abs(corners - quad).max() > 3 * max(reach, 0.1 * extent)
    ):
        return quad, None, False, support
    return corners, ckind, completed, support
