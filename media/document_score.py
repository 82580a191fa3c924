"""Edge support of candidate outlines, and their scores.

Each line's support is sampled once along its whole part in the frame: at 1 px
steps, whether a strong step in grey level runs across it and which way. An
outline's sides are then counted from the cumulative sums between its corners,
so that thousands of outlines cost little more than one.
"""

from __future__ import annotations

import numpy as np

from media.document_geometry import ASPECT, areas, metric_ratios

STRONG = 12.0  # grey levels per pixel across an edge (Sobel / 4 on a blurred frame)
STRONG_SAT = 24.0  # the same in saturation, whose dark pixels are noisy
END_SHARE = 0.15  # share of a side at each end that must be supported
TAIL = 10.0  # px before a side leaves the frame that must be supported
MIN_SEEN = 8  # px of a side in view to count it
# an end without support costs 70 %, not all: clutter of the document's own
# brightness can hide a corner (measured: 0 lost 1 %, 0.5 no better than 0.3)
END_FLOOR = 0.3
# a side whose whole length shows the other polarity counts half: the desk
# beside it can be brighter than the document where it is darker elsewhere
OWN_POLARITY = 0.5
# a side whose edge runs on past a corner in view is a line through the scene
# (a table edge, a cable) rather than the document's side: checked this share
# of the side's length beyond each corner, from OVER_GAP px past it
OVER_SHARE = 0.12
OVER_GAP = 3.0
OVER_COST = 0.6  # what a side that runs on all the way costs
OVER_NEAR = 1 / 3  # share of the stretch next to the corner
# a rival outline (see _rivalled): centred within this share of the diagonal,
# area within these ratios, score at least this share, and sides that do not
# run on (overshoot factor at least RIVAL_CLEAN)
RIVAL_NEAR = 0.1
RIVAL_AREA = (0.6, 1.05)
RIVAL_SCORE = 0.5
RIVAL_CLEAN = 0.9


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


class Support:
    """Per line, cumulative counts of strong edge samples at 1 px steps over the
    line's part in the frame: `pos` where the grey level rises along the
    line's normal (a, b), `neg` where it falls, `seen` all samples. With a
    larger `step` only the totals (the last column) are meant to be read."""

    def __init__(
        self,
        lines: np.ndarray,
        grad: tuple[np.ndarray, np.ndarray],
        step: int = 1,
        sat: tuple[np.ndarray, np.ndarray] | None = None,
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
        # the line and a pixel to either side, apart: a document's outline
        # often runs beside a printed border of the other polarity
        steps, sat_steps = [], []
        for off in (-1.0, 0.0, 1.0):
            x = self.origin[:, 0:1] + ts * self.along[:, 0:1] + off * a[:, None]
            y = self.origin[:, 1:2] + ts * self.along[:, 1:2] + off * b[:, None]
            xi = np.clip(np.rint(x), 0, w - 1).astype(np.int32)
            yi = np.clip(np.rint(y), 0, h - 1).astype(np.int32)
            steps.append(gx[yi, xi] * a[:, None] + gy[yi, xi] * b[:, None])
            if sat is not None:
                sat_steps.append(
                    sat[0][yi, xi] * a[:, None] + sat[1][yi, xi] * b[:, None]
                )
        gn = np.stack(steps)
        pos, neg = (gn > STRONG) & valid, (gn < -STRONG) & valid
        if sat_steps:
            # where the grey level hardly changes (a pale card on pale clutter)
            # a step in saturation counts for the line's own polarity
            only = (np.abs(np.stack(sat_steps)) > STRONG_SAT) & ~(pos | neg) & valid
            rising = pos.sum(-1, keepdims=True) >= neg.sum(-1, keepdims=True)
            pos, neg = pos | (only & rising), neg | (only & ~rising)
        self.pos = self._cum(pos)
        self.neg = self._cum(neg)
        self.seen = self._cum(valid)

    @staticmethod
    def _cum(mask: np.ndarray) -> np.ndarray:
        out = np.zeros((*mask.shape[:-1], mask.shape[-1] + 1), np.int32)
        np.cumsum(mask, axis=-1, out=out[..., 1:])
        return out

    def param(self, line: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Parameter along `line` of the points' projections."""
        return np.einsum("...i,...i->...", pts - self.origin[line], self.along[line])

    def counts(
        self, line: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples (pos, neg, seen) between parameters lo and hi of each line;
        pos and neg per offset from the line (-1, 0, 1 px), a first axis."""
        last = self.seen.shape[1] - 1
        i0 = np.clip(np.ceil(lo - self.t0[line]), 0, last).astype(np.int64)
        i1 = np.clip(np.floor(hi - self.t0[line]) + 1, 0, last).astype(np.int64)
        i1 = np.maximum(i0, i1)
        pos = self.pos[:, line, i1] - self.pos[:, line, i0]
        neg = self.neg[:, line, i1] - self.neg[:, line, i0]
        return pos, neg, self.seen[line, i1] - self.seen[line, i0]

    def coherent(self) -> np.ndarray:
        """Per line, the most samples of one polarity over the opposite one."""
        return np.abs(self.pos[..., -1] - self.neg[..., -1]).max(0)


class Sides:
    """The sides of outlines (Q, 4, 2) on their lines (Q, 4; -1 for a side
    completed beyond the frame): parameter range, polarity and edge support.

    A side is supported where a strong step runs across it with the polarity
    the outline has on most of its length (inside brighter, or darker, than
    outside; print and patterns flip it).
    """

    def __init__(self, corners: np.ndarray, side: np.ndarray, sup: Support):
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
        lead = (bright.max(0) - dark.max(0)).sum(1, keepdims=True)
        self.major = np.sign(lead + 0.5)
        # each side at the offset where it shows the outline's polarity best
        maj, opp = self._major(bright, dark), self._major(dark, bright)
        n = np.maximum(self.seen, 1)
        self.support = np.clip((maj - opp) / n, 0, 1).max(0)
        own = OWN_POLARITY * np.clip((opp - maj) / n, 0, 1).max(0)
        turned = own > self.support
        self.support = np.where(turned, own, self.support)
        # the polarity each side is held to at its ends
        self.side_major = np.where(turned, -self.major, self.major)
        self.in_view = self.seen >= MIN_SEEN

    def _polar(self, pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts (inside brighter, inside darker)."""
        return (
            np.where(self.flip, neg, pos) * self.has,
            np.where(self.flip, pos, neg) * self.has,
        )

    def _major(self, bright: np.ndarray, dark: np.ndarray) -> np.ndarray:
        return np.where(self.major > 0, bright, dark)

    def _side_major(self, bright: np.ndarray, dark: np.ndarray) -> np.ndarray:
        return np.where(self.side_major > 0, bright, dark)

    def _own_share(
        self, start: np.ndarray, stop: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per side, the share of samples between parameters start and stop on
        its line that show the side's own polarity (at the best offset), and
        how many samples there are."""
        pos, neg, seen = self.sup.counts(self.line, start, stop)
        own = self._side_major(*self._polar(pos, neg)).max(0)
        return own / np.maximum(seen, 1), seen

    def edge_score(self) -> np.ndarray:
        """Mean support of the sides in view, cut by the weakest one."""
        side_ok = np.where(self.in_view, self.support, 1.0).min(1)
        n = np.maximum(self.in_view.sum(1), 1)
        mean = (self.support * self.in_view).sum(1) / n
        return mean * np.clip(side_ok / 0.5, 0, 1)

    def subset(self, keep: np.ndarray) -> Sides:
        out = Sides.__new__(Sides)
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
            frac, seen = self._own_share(start, stop)
            fac = np.where(
                corner_in, np.clip(frac / 0.5, 0, 1), np.clip((frac - 0.2) / 0.4, 0, 1)
            )
            fac = np.where(self.in_view & (seen >= 3), fac, 1.0)
            out = np.minimum(out, fac.min(1))
        return END_FLOOR + (1 - END_FLOOR) * out

    def overshoot(self, near_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """A factor 0..1, low where a side's edge, with the side's polarity,
        runs on beyond a corner in view (an outline that took a line through
        the scene for a side, when the document's own side lies just inside
        it), and how many side ends run on (more than half the way).

        A side that runs on does so from its corner: with `near_only` the
        share also counts only as high as it is next to the corner, so that
        a textured desk, or the torch's fall-off across it, whose steps of the
        side's polarity come here and there, does not pass for a run-on."""
        sup, lo, hi = self.sup, self.lo, self.hi
        t0, t1 = sup.t0[self.line], sup.t1[self.line]
        reach = np.maximum(OVER_SHARE * (hi - lo), 6.0)
        out = np.ones(len(lo))
        count = np.zeros(len(lo), np.int64)
        for corner_in, a, b, at_a in (
            (lo >= t0 + 2, np.maximum(lo - OVER_GAP - reach, t0 + 2), lo - OVER_GAP, 0),
            (hi <= t1 - 2, hi + OVER_GAP, np.minimum(hi + OVER_GAP + reach, t1 - 2), 1),
        ):
            b = np.maximum(a, b)
            frac, seen = self._own_share(a, b)
            if near_only:
                part = (b - a) * OVER_NEAR
                near, _ = self._own_share(*((a, a + part) if at_a else (b - part, b)))
                frac = np.minimum(frac, near)
            runs_on = np.clip((frac - 0.3) / 0.4, 0, 1)
            ok = corner_in & self.in_view & (seen >= 0.5 * reach)
            fac = 1 - OVER_COST * np.where(ok, runs_on, 0.0)
            out = np.minimum(out, fac.min(1))
            count += (ok & (runs_on > 0.5)).sum(1)
        return out, count


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


def score_outlines(
    sides: Sides,
    grad: tuple[np.ndarray, np.ndarray],
    kind: str | None,
    cut: np.ndarray,
    relative: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Edge support, shape and size of each outline: (scores, is_td3). With
    `relative`, a side that runs on past a corner costs only where a rival
    outline explains the same document without running on (see _rivalled)."""
    h, w = grad[0].shape
    corners = sides.corners
    shape, td3 = _shape(corners, sides.length, kind, cut, w, h)
    frac_area = areas(corners) / (w * h)
    view = sides.seen.sum(1) / np.maximum(sides.length.sum(1), 1)
    nxt = np.roll(corners, -1, axis=1)
    e1, e2 = nxt - corners, np.roll(corners, -2, axis=1) - nxt
    turn = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    convex = np.all(turn > 0, axis=1) | np.all(turn < 0, axis=1)
    raw = (
        sides.edge_score()
        * sides.ends()
        * shape
        * np.clip(frac_area / 0.08, 0, 1) ** 0.3
        * np.clip(view / 0.6, 0, 1)
    )
    over, ends_over = sides.overshoot()
    if relative:
        over = _rivalled(corners, raw, over, ends_over)
    score = raw * over
    if cut.any():
        score[cut] *= _open_side(corners[cut], grad, sides.major[cut, 0])
    score[~convex | (sides.in_view.sum(1) < 3)] = 0
    return score, td3


def _rivalled(
    corners: np.ndarray, raw: np.ndarray, over: np.ndarray, ends_over: np.ndarray
) -> np.ndarray:
    """The overshoot factor, lifted for outlines with one end of one side
    running on and no rival: an outline about as large, centred near it and
    scoring at least RIVAL_SCORE of it, whose sides do not run on (the
    document's own side just inside a line through the scene). A lone card
    whose side happens to line up with clutter keeps its score; a quad of
    lines crossing the scene runs on at several ends and keeps the cost."""
    lone = np.flatnonzero((over < 1) & (ends_over <= 1))
    clean = np.flatnonzero(over >= RIVAL_CLEAN)
    if not len(lone):
        return over
    out = over.copy()
    centre = corners.mean(1)
    diag = np.linalg.norm(corners[:, 2] - corners[:, 0], axis=1)
    area = areas(corners)
    near = (
        np.linalg.norm(centre[lone, None] - centre[None, clean], axis=2)
        < RIVAL_NEAR * diag[lone, None]
    )
    ratio = area[None, clean] / np.maximum(area[lone, None], 1e-9)
    near &= (ratio > RIVAL_AREA[0]) & (ratio < RIVAL_AREA[1])
    near &= raw[None, clean] >= RIVAL_SCORE * raw[lone, None]
    near &= lone[:, None] != clean[None, :]  # (no outline rivals itself)
    alone = lone[~near.any(1)]
    out[alone] = 1.0
    return out


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
