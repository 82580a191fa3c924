"""Straighten one MRZ line and cut it into glyph crops.

A line found in the image becomes an upright strip whose cap height is CAP
pixels; its ink is cut into a fixed number of cells at the OCR-B pitch, which
may grow along the line when the document is seen at an angle. Pure functions
on arrays, shared by the reader and the glyph model's training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GLYPH_W, GLYPH_H = 16, 24
CAP = 28  # cap height in pixels of a straightened line strip
MARGIN = 14  # rows above and below the cap band in the strip


@dataclass(frozen=True)
class Line:
    """A text line in source pixels: start and end of its axis and its height."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    height: float

    def flipped(self) -> Line:
        return Line(self.p1, self.p0, self.height)

    @property
    def length(self) -> float:
        return float(np.hypot(self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]))

    @property
    def unit(self) -> np.ndarray:
        d = np.subtract(self.p1, self.p0)
        return d / max(np.hypot(*d), 1e-6)

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.p0) + np.asarray(self.p1)) / 2


# -- straightening and cutting a line ----------------------------------------


def _pad(line: Line, cap: float) -> float:
    """Room beyond the line's ends: a line found too short still fits."""
    return 1.2 * cap


def warp_strip(gray: np.ndarray, line: Line, cap: float) -> np.ndarray:
    """The line resampled upright so that its cap height `cap` becomes CAP px."""
    s = CAP / max(cap, 1.0)
    u = line.unit
    v = np.array([-u[1], u[0]])
    pad = _pad(line, cap)
    width = int(round((line.length + 2 * pad) * s))
    height = CAP + 2 * MARGIN
    origin = np.asarray(line.p0) - pad * u - (height / 2 / s) * v
    m = np.array(
        [[u[0] / s, v[0] / s, origin[0]], [u[1] / s, v[1] / s, origin[1]]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        gray,
        m,
        (max(width, 8), height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def ink_map(strip: np.ndarray) -> np.ndarray:
    """Darkness in [0, 1]: 0 for the background, 1 for the print."""
    # percentiles from the histogram: np.percentile sorts and is ten times slower
    cdf = np.cumsum(np.bincount(strip.ravel(), minlength=256)) / strip.size
    lo = float(np.searchsorted(cdf, 0.02))
    hi = float(np.searchsorted(cdf, 0.80))
    if hi - lo < 12:
        return np.zeros(strip.shape, np.float32)
    f = strip.astype(np.float32)
    ink = np.clip((hi - f) * (1.0 / (hi - lo)), 0, 1)

    # a ruling line or a card edge along the line: no MRZ glyph has a
    # horizontal stroke two cap heights long
    rule = cv2.morphologyEx(ink, cv2.MORPH_OPEN, _RULE_KERNEL)
    return ink - rule


_RULE_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * CAP, 1))


def straighten(gray: np.ndarray, line: Line) -> tuple[Line, float] | None:
    """Refine the line's axis and cap height from its ink."""
    cap = line.height
    for _ in range(2):
        ink = ink_map(warp_strip(gray, line, cap))
        s = CAP / cap
        cols = ink.shape[1]
        chunks = 8
        xs, ys, hs = [], [], []
        for k in range(chunks):
            part = ink[:, k * cols // chunks : (k + 1) * cols // chunks]
            rows = part.mean(axis=1)
            if rows.max() < 0.08:
                continue
            band = rows > 0.35 * rows.max()
            idx = np.flatnonzero(band)
            runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
            centre = ink.shape[0] / 2
            run = min(runs, key=lambda r: abs((r[0] + r[-1]) / 2 - centre))
            xs.append((k + 0.5) * cols / chunks)
            ys.append((run[0] + run[-1]) / 2)
            hs.append(run[-1] - run[0] + 1)
        if len(xs) < 3:
            return None
        slope, icpt = np.polyfit(xs, ys, 1)
        h = float(np.median(hs))
        if h < 4:
            return None

        # move the axis onto the band's centre line, in source pixels
        u = line.unit
        v = np.array([-u[1], u[0]])
        pad = _pad(line, cap)
        mid_y = (CAP + 2 * MARGIN) / 2
        ends = []
        for x_strip in (pad * s, pad * s + line.length * s):
            y = slope * x_strip + icpt
            along = x_strip / s - pad
            ends.append(np.asarray(line.p0) + along * u + (y - mid_y) / s * v)
        p0, p1 = ends
        cap = h / s
        line = Line(tuple(p0), tuple(p1), cap)
    return line, cap


def _pitch(profile: np.ndarray, lo: float, hi: float) -> float:
    """The period of the column profile between lo and hi pixels."""
    p = profile - profile.mean()
    ac = np.correlate(p, p, mode="full")[len(p) - 1 :]
    a, b = int(lo), min(int(hi) + 1, len(ac) - 1)
    if b <= a:
        return 0.0
    k = a + int(np.argmax(ac[a:b]))
    if 0 < k < len(ac) - 1:
        den = ac[k - 1] - 2 * ac[k] + ac[k + 1]
        if den < 0:
            return k + 0.5 * (ac[k - 1] - ac[k + 1]) / den
    return float(k)


def _extent(on: np.ndarray) -> tuple[float, float] | None:
    """First and last column of the longest run of print without a wide gap.

    MRZ glyphs are never more than about half a pitch apart, so anything a cap
    height away from the line is not part of it (a card edge, a pattern),
    unless it is a long piece of print beyond a space of about one glyph (some
    issuers print a space in a name).
    """
    idx = np.flatnonzero(on)
    if len(idx) < 10:
        return None
    breaks = np.flatnonzero(np.diff(idx) > 0.9 * CAP)
    runs = list(
        zip(
            idx[np.concatenate([[0], breaks + 1])].tolist(),
            (idx[np.concatenate([breaks, [len(idx) - 1]])] + 1).tolist(),
            strict=True,
        )
    )
    merged = [runs[0]]
    for a, b in runs[1:]:
        pa, pb = merged[-1]
        long_pieces = min(pb - pa, b - a) > 2.5 * CAP
        if a - pb < 1.6 * CAP and long_pieces:
            merged[-1] = (pa, b)
        else:
            merged.append((a, b))
    first, last = max(merged, key=lambda r: r[1] - r[0])
    return float(first), float(last)


_PITCHES = np.linspace(0.97, 1.03, 13)
_SHIFTS = np.linspace(-0.35, 0.05, 9)
# pitch growth from the first to the last cell: a line seen at an angle has
# larger glyphs at its near end (0.24 is about 25 degrees of tilt)
_GROWTHS = np.linspace(-0.24, 0.24, 9)


def _cell_edges(
    profile: np.ndarray, x_first: float, pitch0: float, count: int
) -> np.ndarray:
    """The count + 1 cell boundaries that fall into the gaps between glyphs.

    The pitch may change linearly along the line (perspective); a constant
    pitch wins ties.
    """
    k = np.arange(count + 1, dtype=np.float64)
    # cell i has the width pitch * (1 + g * ((i + 0.5) / count - 0.5)); the
    # boundaries are their running sums
    ramp = (k * k / count - k) / 2
    pitch = pitch0 * _PITCHES[:, None, None, None]
    g = _GROWTHS[None, :, None, None]
    x0 = x_first + _SHIFTS[None, None, :, None] * pitch
    edges = x0 + pitch * (k + g * ramp)
    xs = np.arange(len(profile), dtype=np.float64)
    cost = np.interp(edges, xs, profile).sum(axis=-1)
    cost = cost + 0.02 * profile.max() * np.abs(g[..., 0]) * count
    i = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return edges[i]


def _band(ink: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
    band = ink[MARGIN - 2 : MARGIN + CAP + 2]
    return band.sum(axis=0), _extent((band > 0.5).sum(axis=0) > 0.12 * CAP)


def guess_count(ink: np.ndarray, counts: tuple[int, ...]) -> int | None:
    """The character count among `counts` that the line's length and pitch fit."""
    profile, extent = _band(ink)
    if extent is None:
        return None
    pitch = _pitch(profile, 0.7 * CAP, 1.5 * CAP)
    if pitch <= 0:
        return None
    guess = (extent[1] - extent[0]) / pitch + 0.3
    count = min(counts, key=lambda n: abs(n - guess))
    return count if abs(count - guess) <= 3 else None


def cut_line(
    ink: np.ndarray, count: int | None, counts: tuple[int, ...]
) -> tuple[np.ndarray, int] | None:
    """Glyph crops of a straightened line and the character count used."""
    if count is None:
        count = guess_count(ink, counts)
        if count is None:
            return None
    profile, extent = _band(ink)
    if extent is None:
        return None
    x_first, x_last = extent
    pitch0 = (x_last - x_first) / (count - 0.3)

    edges = _cell_edges(profile, x_first, pitch0, count)
    pitch = (edges[-1] - edges[0]) / count
    centre = MARGIN + CAP / 2
    crops = np.empty((count, GLYPH_H, GLYPH_W), np.float32)
    for i in range(count):
        w = edges[i + 1] - edges[i]
        a, b = edges[i] - 0.1 * w, edges[i + 1] + 0.1 * w
        # under perspective the glyphs grow with the cells: the crop follows
        half = 0.7 * CAP * w / pitch
        m = np.array(
            [[(b - a) / GLYPH_W, 0, a], [0, 2 * half / GLYPH_H, centre - half]],
            dtype=np.float64,
        )
        crops[i] = cv2.warpAffine(
            ink,
            m,
            (GLYPH_W, GLYPH_H),
            flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )
    return crops, count
