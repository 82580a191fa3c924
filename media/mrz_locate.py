"""Locate MRZ text lines in a gray image, at any orientation.

The MRZ is a band of two or three long, thin, parallel lines of OCR-B at one
fixed pitch. Candidate lines come from morphology at two scales and a few
orientations; groups of 2-3 parallel, evenly spaced lines of equal length are
ranked by how strictly their print repeats at one pitch. A group's axis gives
the band's orientation, and `upright` turns the image so that the band reads
left to right (quarter turns exactly, other angles by resampling). Pure
functions on arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from media.frame_size import MRZ_MAX_ASPECT, analysable
from media.mrz_cut import CAP, MARGIN, Line, ink_map, warp_strip

WORK_SIZES = (800, 420)  # working image sizes (longest side) for the line search


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


# the morphology joins glyphs into lines within about 15 degrees of its axis:
# the first pass looks along and across the image, a second one in between
FIRST_ANGLES = (0.0, 90.0)
SECOND_ANGLES = (30.0, 60.0, 120.0, 150.0)


def find_lines(
    gray: np.ndarray,
    angles: tuple[float, ...] = FIRST_ANGLES,
    scales: tuple[float, ...] | None = None,
) -> list[Line]:
    """Candidate text lines in source pixels, at two scales and the given angles.

    The scales are those of WORK_SIZES unless given.
    """
    lines: list[Line] = []
    if not analysable(gray, MRZ_MAX_ASPECT):
        return lines
    h, w = gray.shape
    for f in scales or tuple(size / max(h, w) for size in WORK_SIZES):
        work = cv2.resize(
            gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA
        )
        for angle in angles:
            img, back = _turn(work, angle)
            for box, _, height in _components(img):
                box = box @ back[:, :2].T + back[:, 2]
                lines.append(_to_line(box / f, height / f))
    return lines


def _turn(work: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """`work` turned clockwise by `angle` degrees, and the affine map back."""
    if angle == 0:
        return work, np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if angle == 90:
        # (x', y') in the turned image is (y', H - 1 - x') in `work`
        turned = cv2.rotate(work, cv2.ROTATE_90_CLOCKWISE)
        return turned, np.array([[0, 1.0, 0], [-1.0, 0, work.shape[0] - 1]])
    h, w = work.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[:, 2] += (nw - w) / 2, (nh - h) / 2
    turned = cv2.warpAffine(work, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(m)


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
        # one direction for the whole group before ordering it: the axis of a
        # line near the vertical may point either way (`_to_line`)
        u = g[0].unit
        g = [ln if float(np.dot(ln.unit, u)) > 0 else ln.flipped() for ln in g]
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


# -- orientation ---------------------------------------------------------------

# a band within this many degrees of a quarter turn is turned exactly (no
# resampling); the line search itself takes the rest (it joins glyphs within
# about 15 degrees of its axis)
SNAP = 8.0
# cap heights (work pixels) a band view is searched at: the corpus's MRZs lie
# at 11-17 px at 800 and 6-9 px at 420 (10th-90th percentile, measured); the
# upper end read one or two more askew corpus images than the medians
WORK_CAPS = (17.0, 9.0)
# room beyond a band's ends in a band view, as a share of its length (a line
# found short, broken by a stamp)
SIDE = 0.3
ANGLE_SIZE = 480  # working size (longest side) for the rows of print
ANGLE_STEP = 2.0  # degrees between the coarse angles tried, refined to 0.25


def direction(lines: list[Line]) -> float:
    """The reading direction of a group, in degrees (0 left to right, 90 down)."""
    u = lines[0].unit
    return math.degrees(math.atan2(float(u[1]), float(u[0])))


def turn_needed(degrees: float, period: float = 360.0) -> bool:
    """True when `degrees` is more than SNAP from a multiple of `period`."""
    half = period / 2
    return abs((degrees + half) % period - half) > SNAP


@dataclass
class PrintRows:
    """Where the print of an image runs: the direction of its rows (degrees,
    modulo 180) and the box holding nearly all of it, in coordinates turned
    by that direction (x0, y0, x1, y1; source pixels)."""

    degrees: float
    box: tuple[float, float, float, float]


def print_rows(gray: np.ndarray) -> PrintRows | None:
    """The direction and extent of the rows of print in the image.

    Dark strokes are projected across each candidate direction; along the
    rows the projection is a few sharp peaks (lines of print, the MRZ's the
    longest), so its energy (sum of squares) is highest there. Columns of
    glyphs, even the MRZ's fixed pitch, spread far more.
    """
    h, w = gray.shape
    f = ANGLE_SIZE / max(h, w)
    work = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))
    black = cv2.morphologyEx(work, cv2.MORPH_BLACKHAT, kernel)
    _, mask = cv2.threshold(black, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    ys, xs = np.nonzero(mask)
    if len(xs) < 100:
        return None
    x, y = xs.astype(np.float32), ys.astype(np.float32)
    reach = int(np.hypot(*work.shape)) + 2

    def energy(degrees: float) -> float:
        t = math.radians(degrees)
        r = (y * math.cos(t) - x * math.sin(t) + reach).astype(np.int32)
        hist = np.bincount(r, minlength=2 * reach + 1).astype(np.float64)
        return float(hist @ hist)

    coarse = np.arange(-90.0, 90.0, ANGLE_STEP)
    best = float(coarse[int(np.argmax([energy(a) for a in coarse]))])
    fine = np.arange(best - ANGLE_STEP, best + ANGLE_STEP + 0.01, 0.25)
    degrees = float(fine[int(np.argmax([energy(a) for a in fine]))])

    # the print's extent along and across the rows, stray specks left out
    t = math.radians(degrees)
    along = (x * math.cos(t) + y * math.sin(t)) / f
    across = (y * math.cos(t) - x * math.sin(t)) / f
    (x0, x1), (y0, y1) = (np.percentile(a, (0.5, 99.5)) for a in (along, across))
    return PrintRows(degrees, (float(x0), float(y0), float(x1), float(y1)))


@dataclass
class View:
    """An image to search for the MRZ again, and how to search and read it.

    `back` maps view pixels to source pixels when the lines found in the view
    are to be read from the source, and `frame` is then the source direction
    that reads left to right in the view; with no `back` the view itself is
    read (a quarter turn, exact) and its own axis is the frame.
    """

    image: np.ndarray
    frame: float = 0.0
    back: np.ndarray | None = None
    angles: tuple[float, ...] = FIRST_ANGLES
    scales: tuple[float, ...] | None = None


# counter-clockwise quarter turns by their count
QUARTER_TURNS = {
    1: cv2.ROTATE_90_COUNTERCLOCKWISE,
    2: cv2.ROTATE_180,
    3: cv2.ROTATE_90_CLOCKWISE,
}


def _resampled(
    gray: np.ndarray, degrees: float, box: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The part `box` (x0, y0, x1, y1 in turned coordinates) of `gray` turned
    so that `degrees` reads left to right, and the affine map back to `gray`.

    Corners beyond the image are filled with its border tone.
    """
    t = math.radians(degrees)
    u = np.array([math.cos(t), math.sin(t)])
    v = np.array([-u[1], u[0]])
    x0, y0, x1, y1 = box
    m = np.array([[u[0], u[1], -x0], [v[0], v[1], -y0]])
    edge = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    image = cv2.warpAffine(
        gray,
        m,
        (int(x1 - x0), int(y1 - y0)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(np.median(edge)),
    )
    return image, cv2.invertAffineTransform(m)


def deskewed(gray: np.ndarray, rows: PrintRows) -> View:
    """The image's print turned so that its rows read left to right.

    The view leaves room around the print (a dark gap between a document's
    edge and the view's would join the lines near it); the search scales to
    the print's extent as it would to an upright photo of it (WORK_SIZES of
    its longest side with a small margin), not to the larger canvas.
    """
    x0, y0, x1, y1 = rows.box
    extent = max(x1 - x0, y1 - y0)
    pad = 0.1 * extent
    box = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    image, back = _resampled(gray, rows.degrees, box)
    scales = tuple(size / (1.1 * extent) for size in WORK_SIZES)
    return View(image, rows.degrees, back, FIRST_ANGLES, scales)


def upright(gray: np.ndarray, band: list[Line]) -> View:
    """A view of `gray` in which the band of lines `band` reads left to right.

    Near a quarter turn the whole image is turned exactly (pixels moved, not
    resampled): a document turned by 90, 180 or 270 degrees gives back its
    upright pixels, searched and read as such. Otherwise the view is the band
    and its surroundings, resampled for the search only, at scales set by the
    band's cap height; the lines found in it are read from the source pixels,
    sampled once.
    """
    degrees = direction(band)
    quarter = round(degrees / 90.0)
    if not turn_needed(degrees, 90.0):
        k = quarter % 4
        return View(gray if k == 0 else cv2.rotate(gray, QUARTER_TURNS[k]))

    # the band's box along and across its lines, with room for a line the
    # search missed (line spacing is under 2 cap heights)
    u = band[0].unit
    v = np.array([-u[1], u[0]])
    pts = np.array([p for ln in band for p in (ln.p0, ln.p1)])
    along, across = pts @ u, pts @ v
    cap = max(ln.height for ln in band)
    room = SIDE * float(along.max() - along.min()) + 4 * cap
    box = (
        float(along.min()) - room,
        float(across.min()) - 6 * cap,
        float(along.max()) + room,
        float(across.max()) + 6 * cap,
    )
    image, back = _resampled(gray, degrees, box)
    scales = tuple(c / cap for c in WORK_CAPS)
    return View(image, degrees, back, (0.0,), scales)


def map_line(line: Line, m: np.ndarray) -> Line:
    """The line moved by the affine map `m` (a rotation and shift: no scaling)."""
    p0 = m[:, :2] @ np.asarray(line.p0) + m[:, 2]
    p1 = m[:, :2] @ np.asarray(line.p1) + m[:, 2]
    return Line((float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1])), line.height)
