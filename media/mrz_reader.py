"""Locate and read the machine readable zone (MRZ) in a BGR image.

The MRZ is printed in OCR-B at a fixed pitch, so a line can be cut into its
characters by the pitch alone once it is found and straightened
(`media.mrz_cut`). Lines are found with morphology at two scales and in two
orientations; groups of 2-3 parallel lines are ranked by how strictly their
print repeats at one pitch, and each is read in both directions (180 degrees)
by a small glyph classifier (`media.mrz_model`, trained on rendered OCR-B by
`media.mrz_glyphs`); the reading whose check digits agree wins. Fields that no
check digit covers are vouched for by the classifier's confidence and the
table of country codes (`media.mrz_codes`); a reading in doubt there is not
reported valid. Pure functions; the model is loaded once, lazily, and only
read afterwards, so the reader is thread-safe.
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
from media.mrz_cut import (
    CAP,
    MARGIN,
    Line,
    cut_line,
    guess_count,
    ink_map,
    straighten,
    warp_strip,
)

logger = logging.getLogger(__name__)

LINE_LENGTHS = {3: (30,), 2: (36, 44)}
WORK_SIZES = (800, 420)  # working image sizes (longest side) for the line search
AMBIGUOUS = 0.08  # second-choice probability that makes a glyph worth a retry
MAX_REPAIRS = 6  # ambiguous glyphs tried in the second-choice repair


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
_model: list[dict[str, np.ndarray]] | None = None


def decode_weights(text: str) -> list[dict[str, np.ndarray]]:
    """The member networks of a generated model file's WEIGHTS.

    Member 0 is stored under plain names (w1, b1, ...), member i under "m{i}_".
    """
    data = np.load(io.BytesIO(base64.b64decode(text)))
    members: list[dict[str, np.ndarray]] = []
    while True:
        prefix = f"m{len(members)}_" if members else ""
        if prefix + "w1" not in data:
            return members
        net = {}
        for name in ("w1", "w2"):
            scale = data[prefix + name + "_scale"]
            net[name] = data[prefix + name].astype(np.float32) * scale
        for name in ("b1", "b2", "mean"):
            net[name] = data[prefix + name].astype(np.float32)
        members.append(net)


def load_model() -> list[dict[str, np.ndarray]]:
    """The glyph classifier's networks, decoded once from `media.mrz_model`."""
    global _model
    with _model_lock:
        if _model is None:
            from media import mrz_model

            _model = decode_weights(mrz_model.WEIGHTS)
        return _model


def classify(glyphs: np.ndarray, model: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Class probabilities (over ALPHABET) for glyph crops of GLYPH_H x GLYPH_W.

    The members' log-probabilities are averaged: a glyph is sure only when
    every member is sure of it.
    """
    x = glyphs.reshape(len(glyphs), -1).astype(np.float32)
    logp = np.zeros((len(x), len(ALPHABET)), np.float32)
    for net in model:
        h = np.maximum((x - net["mean"]) @ net["w1"] + net["b1"], 0)
        z = h @ net["w2"] + net["b2"]
        z -= z.max(axis=1, keepdims=True)
        logp += z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    z = logp / len(model)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- reading a group of lines ----------------------------------------------


def read_lines(
    gray: np.ndarray, lines: list[Line], model: list[dict[str, np.ndarray]]
) -> tuple[list[str], np.ndarray] | None:
    """Read a group of MRZ lines (in reading order); text and glyph probabilities."""
    counts = LINE_LENGTHS.get(len(lines))
    if counts is None:
        return None
    inks = []
    for line in lines:
        fixed = straighten(gray, line)
        if fixed is None:
            return None
        inks.append(ink_map(warp_strip(gray, fixed[0], fixed[1])))

    # all lines of an MRZ have the same length: take the count the lines agree on
    guesses = [guess_count(ink, counts) for ink in inks]
    found = [g for g in guesses if g is not None]
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
    """A run of Os after a digit of a document number or optional data is 0s.

    OCR-B's O and 0 differ only in width; inside or at the end of a run of
    digits the digit is the reading that number series use (a prior: the check
    digits still judge it, and a single O/0 swap always changes a check digit).
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
        if left.isdigit() and (right.isdigit() or right in ("<", "")):
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


# the morphology joins glyphs into lines within about 15 degrees of its axis:
# the first pass looks along and across the image, a second one in between
FIRST_ANGLES = (0.0, 90.0)
SECOND_ANGLES = (30.0, 60.0, 120.0, 150.0)


def find_lines(
    gray: np.ndarray, angles: tuple[float, ...] = FIRST_ANGLES
) -> list[Line]:
    """Candidate text lines in source pixels, at two scales and the given angles."""
    lines: list[Line] = []
    h, w = gray.shape
    for size in WORK_SIZES:
        f = size / max(h, w)
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


def _located(result: MrzResult) -> bool:
    """True when a reading leaves no doubt where the MRZ is: most checks pass.

    A document whose printed check digits fail (some specimens) is not
    searched for at other angles again.
    """
    checks = list(result.checks.values())
    return result.valid or (bool(checks) and sum(checks) >= len(checks) / 2)


def _read_groups(
    gray: np.ndarray,
    found: list[Line],
    model: list[dict[str, np.ndarray]],
    max_groups: int,
    best: _Candidate | None,
) -> _Candidate | None:
    """The best reading of the likeliest groups of `found`, or `best` if better."""
    for group in rank_groups(gray, group_lines(found))[:max_groups]:
        for lines in (group, [ln.flipped() for ln in reversed(group)]):
            got = read_lines(gray, lines, model)
            if got is None:
                continue
            cand = _candidate(*got)
            if best is None or cand.score > best.score:
                best = cand
            if cand.result.valid:
                return best
    return best


def read_mrz(image: np.ndarray, *, max_groups: int = 6) -> MrzReading:
    """Find and read the MRZ of a document in a BGR (or gray) image."""
    start = time.perf_counter()
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    model = load_model()
    best: _Candidate | None = None
    # the second pass reads fewer groups: the periodicity ranking puts a
    # tilted MRZ first, and a search at more angles finds more clutter
    for angles, groups in ((FIRST_ANGLES, max_groups), (SECOND_ANGLES, 3)):
        if best is not None and _located(best.result):
            break
        best = _read_groups(gray, find_lines(gray, angles), model, groups, best)
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
