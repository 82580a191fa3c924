"""Locate and read the machine readable zone (MRZ) in a BGR image.

The MRZ is printed in OCR-B at a fixed pitch, so a line can be cut into its
characters by the pitch alone once it is found and straightened. Lines are found
with morphology at two scales and in two orientations; each candidate group of
2-3 parallel lines is read in both directions (180 degrees) by a small glyph
classifier (`media.mrz_model`, trained on rendered OCR-B by `media.mrz_glyphs`),
and the reading whose check digits agree wins. Pure functions; the model is
loaded once, lazily, and only read afterwards, so the reader is thread-safe.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from media.mrz import ALPHABET, MrzResult, alnum_positions, detect_format, parse_mrz
from media.mrz_codes import choose_codes, uncertain_fields

logger = logging.getLogger(__name__)

GLYPH_W, GLYPH_H = 16, 24
CAP = 28  # cap height in pixels of a straightened line strip
MARGIN = 14  # rows above and below the cap band in the strip
LINE_LENGTHS = {3: (30,), 2: (36, 44)}
WORK_SIZES = (800, 420)
AMBIGUOUS = 0.08  # second-choice probability that makes a glyph worth a retry
MAX_REPAIRS = 6  # working image sizes (longest side) for the line search


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


@dataclass
class MrzReading:
    """What the reader found in one image."""

    found: bool
    lines: list[str] = field(default_factory=list)
    raw_lines: list[str] = field(default_factory=list)
    result: MrzResult | None = None
    confidence: float = 0.0
    uncertain_fields: list[str] = field(default_factory=list)
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"found": self.found, "lines": list(self.lines)}
        parsed = self.result.to_dict() if self.result else {}
        out["valid"] = bool(parsed.get("valid", False))
        for key in ("format", "type", "fields", "checks", "expired", "accepted"):
            out[key] = parsed.get(key)
        out["accepted"] = bool(out["accepted"])
        out["reason"] = parsed.get("reason", "no MRZ found" if not self.found else "")
        out["confidence"] = round(self.confidence, 3)
        out["uncertain_fields"] = list(self.uncertain_fields)
        out["ms"] = round(self.ms, 1)
        return out


# -- glyph model -------------------------------------------------------------

_model_lock = threading.Lock()
_model: dict[str, np.ndarray] | None = None


def load_model() -> dict[str, np.ndarray]:
    """The glyph classifier's weights, decoded once from `media.mrz_model`."""
    global _model
    with _model_lock:
        if _model is None:
            from media import mrz_model

            data = np.load(io.BytesIO(base64.b64decode(mrz_model.WEIGHTS)))
            model = {}
            for name in ("w1", "w2"):
                model[name] = data[name].astype(np.float32) * data[name + "_scale"]
            model["b1"] = data["b1"].astype(np.float32)
            model["b2"] = data["b2"].astype(np.float32)
            model["mean"] = data["mean"].astype(np.float32)
            _model = model
        return _model


def classify(glyphs: np.ndarray, model: dict[str, np.ndarray]) -> np.ndarray:
    """Class probabilities (over ALPHABET) for glyph crops of GLYPH_H x GLYPH_W."""
    x = glyphs.reshape(len(glyphs), -1).astype(np.float32) - model["mean"]
    h = np.maximum(x @ model["w1"] + model["b1"], 0)
    z = h @ model["w2"] + model["b2"]
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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


def _straighten(gray: np.ndarray, line: Line) -> tuple[Line, float] | None:
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
    ramp = k + (k * k / count - k) / 2
    pitch = pitch0 * _PITCHES[:, None, None, None]
    g = _GROWTHS[None, :, None, None]
    x0 = x_first + _SHIFTS[None, None, :, None] * pitch
    edges = x0 + pitch * (k + g * ramp)
    xs = np.arange(len(profile), dtype=np.float64)
    cost = np.interp(edges, xs, profile).sum(axis=-1)
    cost = cost + 0.02 * profile.max() * np.abs(g[..., 0]) * count
    i = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return edges[i]


def cut_line(
    ink: np.ndarray, count: int | None, counts: tuple[int, ...]
) -> tuple[np.ndarray, int] | None:
    """Glyph crops of a straightened line and the character count used."""
    band = ink[MARGIN - 2 : MARGIN + CAP + 2]
    profile = band.sum(axis=0)
    extent = _extent((band > 0.5).sum(axis=0) > 0.12 * CAP)
    if extent is None:
        return None
    x_first, x_last = extent
    span = x_last - x_first
    if count is None:
        pitch = _pitch(profile, 0.7 * CAP, 1.5 * CAP)
        if pitch <= 0:
            return None
        guess = span / pitch + 0.3
        count = min(counts, key=lambda n: abs(n - guess))
        if abs(count - guess) > 3:
            return None
    pitch0 = span / (count - 0.3)

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


def read_lines(
    gray: np.ndarray, lines: list[Line], model: dict[str, np.ndarray]
) -> tuple[list[str], np.ndarray] | None:
    """Read a group of MRZ lines (in reading order); text and glyph probabilities."""
    counts = LINE_LENGTHS.get(len(lines))
    if counts is None:
        return None
    inks = []
    for line in lines:
        fixed = _straighten(gray, line)
        if fixed is None:
            return None
        inks.append(ink_map(warp_strip(gray, fixed[0], fixed[1])))

    # all lines of an MRZ have the same length: take the count the lines agree on
    guesses = [cut_line(ink, None, counts) for ink in inks]
    found = [g[1] for g in guesses if g is not None]
    if not found:
        return None
    count = max(set(found), key=found.count)
    crops = [cut_line(ink, count, counts) for ink in inks]
    if any(c is None for c in crops):
        return None
    glyphs = np.concatenate([c[0] for c in crops if c is not None])
    probs = classify(glyphs, model)
    best = probs.argmax(axis=1)
    text = "".join(ALPHABET[i] for i in best)
    out = _repair([text[i * count : (i + 1) * count] for i in range(len(lines))], probs)
    return out, probs


def _digit_context(lines: list[str]) -> list[str]:
    """A run of Os between two digits of a document number or optional data is 0s.

    OCR-B's O and 0 differ only in width; inside a run of digits the digit is
    the reading that number series use (a prior, not a check-digit correction).
    """
    fmt = detect_format(lines)
    if not fmt:
        return lines
    out = [list(line) for line in lines]
    for row, col in alnum_positions(fmt):
        line = lines[row]
        if line[col] != "O":
            continue
        left = line[:col].rstrip("O")[-1:]
        right = line[col + 1 :].lstrip("O")[:1]
        if left.isdigit() and right.isdigit():
            out[row][col] = "0"
    return ["".join(line) for line in out]


def _repair(lines: list[str], probs: np.ndarray) -> list[str]:
    """Swap in the classifier's second choice where only that passes the checks.

    Only glyphs the classifier itself found ambiguous (second choice at least
    AMBIGUOUS) are tried, one or two at a time, and a repair is taken only if it
    is the single one that makes every check digit pass.
    """
    lines = _digit_context(lines)
    if parse_mrz(lines).valid:
        return lines
    order = np.argsort(probs, axis=1)
    second = order[:, -2]
    p2 = probs[np.arange(len(probs)), second]
    spots = [int(i) for i in np.argsort(-p2)[:MAX_REPAIRS] if p2[i] >= AMBIGUOUS]
    count = len(lines[0])
    flat = "".join(lines)
    found = []
    for n in (1, 2):
        for combo in itertools.combinations(spots, n):
            chars = list(flat)
            for i in combo:
                chars[i] = ALPHABET[second[i]]
            text = "".join(chars)
            trial = [text[k * count : (k + 1) * count] for k in range(len(lines))]
            if parse_mrz(trial).valid:
                found.append(trial)
        if found:
            break
    return found[0] if len(found) == 1 else lines


# -- finding candidate lines -------------------------------------------------


def _components(work: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
    """Long thin dark-text blobs: (box corners, length, height) in `work` px."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 7))
    black = cv2.morphologyEx(work, cv2.MORPH_BLACKHAT, kernel)
    _, mask = cv2.threshold(black, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(
        mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (13, 3))
    )
    mask = cv2.morphologyEx(
        mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    )
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        rect = cv2.minAreaRect(c)
        w, h = rect[1]
        length, height = max(w, h), min(w, h)
        if height < 4 or length < 12 * height or length < 0.15 * max(work.shape):
            continue
        out.append((cv2.boxPoints(rect), length, height))
    return out


def _to_line(box: np.ndarray, height: float) -> Line:
    """The axis of a rotated box: midpoints of its two short sides."""
    d01 = np.hypot(*(box[1] - box[0]))
    d12 = np.hypot(*(box[2] - box[1]))
    if d01 < d12:
        a, b = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
    else:
        a, b = (box[1] + box[2]) / 2, (box[3] + box[0]) / 2
    if (b[0] - a[0]) < -abs(b[1] - a[1]) * 0.01 or (
        abs(b[0] - a[0]) < 1e-6 and b[1] < a[1]
    ):
        a, b = b, a
    # the blob's height includes the closing: the cap height is about 80% of it
    return Line((float(a[0]), float(a[1])), (float(b[0]), float(b[1])), 0.8 * height)


def find_lines(gray: np.ndarray) -> list[Line]:
    """Candidate text lines in source pixels, at two scales and two orientations."""
    lines: list[Line] = []
    h, w = gray.shape
    for size in WORK_SIZES:
        f = size / max(h, w)
        work = cv2.resize(
            gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA
        )
        for quarter in (0, 1):
            img = cv2.rotate(work, cv2.ROTATE_90_CLOCKWISE) if quarter else work
            for box, _, height in _components(img):
                if quarter:
                    # (x', y') in the rotated image is (y', H - 1 - x') in `work`
                    box = np.stack([box[:, 1], work.shape[0] - 1 - box[:, 0]], 1)
                lines.append(_to_line(box / f, height / f))
    return lines


def group_lines(lines: list[Line]) -> list[list[Line]]:
    """Groups of 2-3 parallel, aligned, evenly spaced lines of equal length."""

    geo = [
        (*ln.center, *ln.unit, ln.length, ln.height) for ln in lines
    ]  # plain floats: this runs for every pair of lines

    def near(i: int, j: int) -> bool:
        ax, ay, ux, uy, la, ha = geo[i]
        bx, by, vx, vy, lb, hb = geo[j]
        if not (0.6 < ha / hb < 1.6 and 0.45 < la / lb < 2.2):
            return False
        if abs(ux * vx + uy * vy) < 0.995:
            return False
        dx, dy = bx - ax, by - ay
        along = abs(dx * ux + dy * uy)
        across = abs(ux * dy - uy * dx)
        h = (ha + hb) / 2
        return along < 0.3 * max(la, lb) and 1.1 * h < across < 4.5 * h

    groups: list[list[Line]] = []
    n = len(lines)
    for i in range(n):
        for j in range(i + 1, n):
            if not near(i, j):
                continue
            groups.append([lines[i], lines[j]])
            for k in range(j + 1, n):
                if near(j, k) or near(i, k):
                    groups.append([lines[i], lines[j], lines[k]])
    ordered = []
    for g in groups:
        u = g[0].unit
        v = np.array([-u[1], u[0]])
        g = sorted(g, key=lambda ln: float(np.dot(ln.center, v)))
        if len(g) == 3:
            gaps = [
                float(np.dot(g[1].center - g[0].center, v)),
                float(np.dot(g[2].center - g[1].center, v)),
            ]
            if not 0.7 < gaps[0] / max(gaps[1], 1e-6) < 1.4:
                continue
        ordered.append(_common_span(g))
    # three-line groups first (a TD1 contains two-line sub-groups), longer first
    ordered.sort(key=lambda g: (-len(g), -sum(ln.length for ln in g)))
    return _dedupe(ordered)


def _common_span(group: list[Line]) -> list[Line]:
    """The group's lines stretched to their common extent along the axis.

    MRZ lines are equally long; a line cut short by a stamp or a glare gets
    the extent of its neighbours.
    """
    u = group[0].unit
    origin = np.asarray(group[0].p0)
    along = [
        float(np.dot(np.asarray(p) - origin, u)) for ln in group for p in (ln.p0, ln.p1)
    ]
    lo, hi = min(along), max(along)
    out = []
    for ln in group:
        c = np.asarray(ln.center)
        mid = c - float(np.dot(c - origin, u)) * u
        p0, p1 = mid + lo * u, mid + hi * u
        out.append(
            Line((float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1])), ln.height)
        )
    return out


def _dedupe(groups: list[list[Line]]) -> list[list[Line]]:
    out: list[list[Line]] = []
    for g in groups:
        c = np.mean([ln.center for ln in g], axis=0)
        h = np.mean([ln.height for ln in g])
        dup = any(
            len(o) == len(g)
            and np.hypot(*(np.mean([ln.center for ln in o], axis=0) - c)) < 2 * h
            for o in out
        )
        if not dup:
            out.append(g)
    return out


def periodicity(gray: np.ndarray, line: Line) -> float:
    """How strongly the line's print repeats at one pitch (0 to 1).

    OCR-B in an MRZ has a fixed pitch; proportional print (a page of text
    in another orientation, a justified paragraph) repeats far less.
    """
    band = ink_map(warp_strip(gray, line, line.height))[MARGIN - 2 : MARGIN + CAP + 2]
    p = band.sum(axis=0)
    p = p - p.mean()
    f = np.fft.rfft(p, 2 * len(p))
    ac = np.fft.irfft(f * np.conj(f))[: len(p)]
    if len(ac) < 2 * CAP or ac[0] <= 0:
        return 0.0
    return float(ac[int(0.6 * CAP) : int(1.6 * CAP)].max() / ac[0])


def rank_groups(gray: np.ndarray, groups: list[list[Line]]) -> list[list[Line]]:
    """Candidate groups, the most MRZ-like print first.

    A three-line group gets a head start: a TD1 also yields two-line groups.
    """
    cache: dict[tuple[int, ...], float] = {}

    def score(line: Line) -> float:
        key = tuple(int(v) for v in (*line.p0, *line.p1))
        if key not in cache:
            cache[key] = periodicity(gray, line)
        return cache[key]

    scored = [
        (float(np.mean([score(ln) for ln in g])) + (0.15 if len(g) == 3 else 0), i)
        for i, g in enumerate(groups)
    ]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [groups[i] for _, i in scored]


def _score(result: MrzResult, confidence: float) -> float:
    passed = sum(result.checks.values())
    return (100.0 if result.valid else 0.0) + 5.0 * passed + 10.0 * confidence


@dataclass
class _Candidate:
    score: float
    raw: list[str]
    result: MrzResult
    confidence: float
    probs: np.ndarray
    code_doubts: list[str]


def _candidate(text: list[str], probs: np.ndarray) -> _Candidate:
    """Parse one reading, with unknown country codes replaced where the print allows."""
    fmt = detect_format(text)
    code_doubts: list[str] = []
    if fmt:
        text, code_doubts = choose_codes(fmt, text, probs)
    result = parse_mrz(text)
    conf = float(probs.max(axis=1).mean())
    return _Candidate(_score(result, conf), text, result, conf, probs, code_doubts)


def _gate(cand: _Candidate) -> tuple[MrzResult, list[str], float]:
    """The result, made invalid when an uncovered field was read with doubt."""
    result = cand.result
    if not result.format or len(result.lines) != len(cand.raw):
        return result, [], cand.confidence
    doubtful, lowest = uncertain_fields(
        result.format, result.lines, cand.probs, cand.code_doubts
    )
    if doubtful and result.valid:
        result = replace(
            result,
            valid=False,
            accepted=False,
            reason="uncertain characters in names/codes: " + ", ".join(doubtful),
        )
    return result, doubtful, cand.confidence


def read_mrz(image: np.ndarray, *, max_groups: int = 6) -> MrzReading:
    """Find and read the MRZ of a document in a BGR (or gray) image."""
    start = time.perf_counter()
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    model = load_model()
    best: _Candidate | None = None
    for group in rank_groups(gray, group_lines(find_lines(gray)))[:max_groups]:
        for lines in (group, [ln.flipped() for ln in reversed(group)]):
            got = read_lines(gray, lines, model)
            if got is None:
                continue
            cand = _candidate(*got)
            if best is None or cand.score > best.score:
                best = cand
            if cand.result.valid:
                break
        if best is not None and best.result.valid:
            break
    ms = (time.perf_counter() - start) * 1000
    if best is None or (not best.result.valid and best.confidence < 0.6):
        return MrzReading(found=False, ms=ms)
    result, doubtful, confidence = _gate(best)
    return MrzReading(
        found=True,
        lines=list(result.lines) if result.format else best.raw,
        raw_lines=best.raw,
        result=result,
        confidence=confidence,
        uncertain_fields=doubtful,
        ms=ms,
    )
