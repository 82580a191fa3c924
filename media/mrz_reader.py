"""Locate and read the machine readable zone (MRZ) in a BGR image.

The MRZ is printed in OCR-B at a fixed pitch, so a line can be cut into its
characters by the pitch alone once it is found and straightened
(`media.mrz_cut`). Candidate bands of 2-3 lines come from `media.mrz_locate`,
first along and across the image; each is read as found, and turned by 180
degrees only when that reading fails its check digits, by a small glyph
classifier (`media.mrz_model`, trained on rendered OCR-B by
`media.mrz_glyphs`). When nothing is located that way and the print runs at
an angle, the image is turned to its rows of print and searched again. A
reading that is not sure, of a band that does not run along the view it was
found in (upside down, sideways, askew), is read once more in a view turned
to the band: quarter turns exactly, so a document turned by 90, 180 or 270
degrees is read from its upright pixels. Fields that no check digit covers
are vouched for by the classifier's confidence and the table of country
codes (`media.mrz_codes`); a reading in doubt there is not reported valid.
Pure functions; the model is loaded once, lazily, and only read afterwards,
so the reader is thread-safe.
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

from media.frame_size import MRZ_MAX_ASPECT, analysable
from media.mrz import ALPHABET, MrzResult, alnum_positions, detect_format, parse_mrz
from media.mrz_codes import choose_codes, uncertain_fields
from media.mrz_cut import Line, cut_line, guess_count, ink_map, straighten, warp_strip
from media.mrz_locate import (
    FIRST_ANGLES,
    SECOND_ANGLES,
    View,
    deskewed,
    direction,
    find_lines,
    group_lines,
    map_line,
    print_rows,
    rank_groups,
    turn_needed,
    upright,
)

logger = logging.getLogger(__name__)

LINE_LENGTHS = {3: (30,), 2: (36, 44)}
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


def _score(result: MrzResult, confidence: float) -> float:
    """Valid readings first; then a check digit passed weighs as much as 0.07
    of mean glyph confidence: a reading upside down passes a check or two by
    chance, but its glyphs are far less sure (0.6 against 0.95 measured)."""
    passed = sum(result.checks.values())
    return (100.0 if result.valid else 0.0) + 2.0 * passed + 30.0 * confidence


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
        # a type refused or an expiry stays the first reason: it holds
        # whatever the doubtful characters turn out to be
        reasons = [result.reason] if result.reason else []
        reasons.append("uncertain characters in names/codes: " + ", ".join(doubtful))
        result = replace(result, valid=False, accepted=False, reason="; ".join(reasons))
    return result, doubtful, cand.confidence


def _located(result: MrzResult) -> bool:
    """True when a reading leaves no doubt where the MRZ is: most checks pass.

    A document whose printed check digits fail (some specimens) is not
    searched for at other angles again.
    """
    checks = list(result.checks.values())
    return result.valid or (bool(checks) and sum(checks) >= len(checks) / 2)


@dataclass
class _Search:
    """The best reading of an image so far, the band it was read from, and
    the likely groups that could not be read (a TD1 with a line not found).

    A band is kept in the pixels of the image it was read from, with the
    direction (degrees, in those pixels) its view reads along.
    """

    best: _Candidate | None = None
    band: tuple[list[Line], float] = ([], 0.0)
    unread: list[tuple[list[Line], float]] = field(default_factory=list)
    hit: bool = False  # some reading located the MRZ, the best or another

    def offer(self, cand: _Candidate, band: list[Line], frame: float) -> None:
        self.hit = self.hit or _located(cand.result)
        if self.best is None or cand.score > self.best.score:
            self.best, self.band = cand, (band, frame)

    def rank(self) -> float:
        """The best reading's score, raised when it was read along its view.

        A view turned to the band reads its glyphs as upright lines: on about
        equal scores (within half a check digit) its reading wins.
        """
        if self.best is None:
            return -1.0
        return self.best.score + (0.0 if _across(*self.band) else 1.0)

    def located(self) -> bool:
        """True when a reading located the MRZ (most of its checks pass).

        The best reading may be another one (its glyphs surer, as where the
        printed check digits fail): it is still read where the MRZ is.
        """
        return self.hit


def _across(band: list[Line], frame: float) -> bool:
    """True when the band does not read along the view it was found in."""
    return turn_needed(direction(band) - frame)


def _read_groups(
    gray: np.ndarray,
    found: list[Line],
    model: list[dict[str, np.ndarray]],
    max_groups: int,
    search: _Search,
    frame: float = 0.0,
) -> None:
    """Read the likeliest groups of `found` into `search`, until one is valid.

    Each group is read as found, and turned by 180 degrees only when that
    reading fails its check digits.
    """
    for group in rank_groups(gray, group_lines(found))[:max_groups]:
        read = False
        for lines in (group, [ln.flipped() for ln in reversed(group)]):
            got = read_lines(gray, lines, model)
            if got is None:
                continue
            read = True
            cand = _candidate(*got)
            search.offer(cand, lines, frame)
            if cand.result.valid:
                return
        if not read:
            search.unread.append((group, frame))


def _read_view(
    gray: np.ndarray,
    view: View,
    model: list[dict[str, np.ndarray]],
    max_groups: int,
    search: _Search,
) -> None:
    """Search a view for lines and read them, from the source when it can."""
    found = find_lines(view.image, view.angles, view.scales)
    if view.back is None:
        _read_groups(view.image, found, model, max_groups, search)
        return
    found = [map_line(ln, view.back) for ln in found]
    _read_groups(gray, found, model, max_groups, search, view.frame)


def _search(
    gray: np.ndarray, model: list[dict[str, np.ndarray]], max_groups: int
) -> _Search:
    """Look for the MRZ along and across the image, then along its print.

    When the first look locates nothing and the rows of print run at an
    angle, the image is turned to them (a document lying askew); otherwise
    the search tries angles in between, reading fewer groups (the
    periodicity ranking puts a tilted MRZ first, and more angles find more
    clutter).
    """
    search = _Search()
    _read_groups(gray, find_lines(gray, FIRST_ANGLES), model, max_groups, search)
    if search.located():
        return search
    rows = print_rows(gray)
    if rows is not None and turn_needed(rows.degrees, 90.0):
        _read_view(gray, deskewed(gray, rows), model, max_groups, search)
    else:
        _read_groups(gray, find_lines(gray, SECOND_ANGLES), model, 3, search)
    return search


def _sure(cand: _Candidate | None) -> bool:
    return cand is not None and cand.result.valid and not _gate(cand)[1]


def _turns(search: _Search) -> list[list[Line]]:
    """Bands worth reading again in a view turned to them (at most two, one
    per direction).

    A located reading names the band and its direction. Without one, the
    best reading's band does, then the likeliest groups that could not be
    read (a TD1 seen at an angle may show only two of its lines to the
    search). A band already read along its view is not read again.
    """
    if search.located():
        bands = [search.band]
    elif search.best is not None:
        bands = [search.band, *search.unread]
    else:
        bands = list(search.unread)
    out: list[list[Line]] = []
    for lines, frame in bands:
        d = direction(lines)
        if _across(lines, frame) and all(turn_needed(d - direction(o)) for o in out):
            out.append(lines)
    return out[:2]


def read_mrz(image: np.ndarray, *, max_groups: int = 6) -> MrzReading:
    """Find and read the MRZ of a document in a BGR (or gray) image.

    A reading that is not sure, of a band that does not run along the view
    it was found in, is done again in a view turned to the band; the better
    reading stays.
    """
    start = time.perf_counter()
    if not analysable(image, MRZ_MAX_ASPECT):
        return MrzReading(found=False)
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    model = load_model()
    search = _search(gray, model, max_groups)
    for band in [] if _sure(search.best) else _turns(search):
        again = _Search()
        _read_view(gray, upright(gray, band), model, max_groups, again)
        if again.rank() > search.rank():
            search = again
        if _sure(search.best):
            break
    best = search.best
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
