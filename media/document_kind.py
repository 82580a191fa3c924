"""Tell an ID-1 card from a TD3 passport page when a side is cut off.

A cut-off document's proportions cannot be measured, but its machine readable
zone can: ICAO Doc 9303 prints MRZ characters in OCR-B at a fixed pitch of
2.54 mm (10 characters per inch) on every format, so the pitch as a share of a
side that is fully in view tells the side's length in millimetres. The MRZ
runs along a long side; the text lines are found by their ink spreading over
the width, and the pitch by the autocorrelation of their ink along the line.
"""

from __future__ import annotations

import cv2
import numpy as np

MRZ_PITCH_MM = 2.54
SIDES_MM = {"id1": (85.60, 53.98), "td3": (125.0, 88.0)}
RECT_SHORT = 256  # px of the short side in the rectified view (ID-1 pitch ~12 px)
ZONE = 0.38  # share of the short side next to each long side searched for an MRZ
MIN_PEAK = 0.2  # comb score of a monospaced MRZ line (proportional print < 0.11)
PITCH_RANGE = (0.85, 1.15)  # of the nominal pitch; ID-1 and TD3 are 1.46x apart
MIN_MARGIN = 0.1  # by which one pitch must beat the other


def _ink(zone: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Print darker than its neighbourhood along the line, rows that are not
    spread over the width removed; (rows, cols) float32, mean-free rows."""
    z = zone.astype(np.float32)
    ink = (cv2.dilate(z, np.ones((1, 9), np.uint8)) - z) * seen
    chunks = 8
    n = ink.shape[1] // chunks * chunks
    if n == 0:
        return np.zeros((0, ink.shape[1]), np.float32)
    part = ink[:, :n].reshape(len(ink), chunks, -1).mean(2)
    vis = seen[:, :n].reshape(len(ink), chunks, -1).mean(2) > 0.5
    if not vis.any():
        return np.zeros((0, ink.shape[1]), np.float32)
    # an MRZ line spans about 89 % of the long side: ink in most chunks in view
    active = (part > 0.5 * float(np.median(part[vis])) + 2.0) & vis
    rows = active.sum(1) >= 0.7 * np.maximum(vis.sum(1), 1)
    if rows.sum() < 3:
        return np.zeros((0, ink.shape[1]), np.float32)
    ink, seen = ink[rows], seen[rows]
    mean = ink.sum(1, keepdims=True) / np.maximum(seen.sum(1, keepdims=True), 1)
    return (ink - mean) * seen


def _autocorrelation(ink: np.ndarray) -> np.ndarray:
    """Mean normalised autocorrelation of the rows along the line, weighted by
    each row's energy."""
    n = ink.shape[1]
    spec = np.fft.rfft(ink, 2 * n, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n]
    energy = ac[:, 0] + 1e-6
    return (ac.sum(0)) / energy.sum()


def _comb(ac: np.ndarray, pitch: float, teeth: int = 4) -> float:
    """How periodic the rows are at `pitch`: the autocorrelation at its first
    multiples against halfway between them (monospaced glyph cells line up
    at every multiple; proportional print does not)."""
    lags = np.arange(len(ac), dtype=np.float64)
    on = [k * pitch for k in range(1, teeth + 1)]
    off = [(k - 0.5) * pitch for k in range(1, teeth + 1)]
    if on[-1] + 1 >= len(ac):
        return 0.0
    return float(np.interp(on, lags, ac).mean() - np.interp(off, lags, ac).mean())


def mrz_scores(
    gray: np.ndarray, quad: np.ndarray, aspect: float, short_known: bool
) -> dict[str, float]:
    """Per kind, how periodic the print along the long sides is at that kind's
    MRZ pitch (the best of the two long sides).

    `quad` is an outline A, B, B', A' with long over short side `aspect`, whose
    side A-B is fully in view: a short side when `short_known`, else a long
    one; the length of B-B' and A'-A, out of view in part, is only a guess.
    """
    h, w = gray.shape
    # the rectified view: long sides horizontal, the known side at its scale
    if short_known:
        short = float(RECT_SHORT)
        long_ = short * aspect
        dst = [[0, 0], [0, short], [long_, short], [long_, 0]]
        pitches = {k: short * MRZ_PITCH_MM / s[1] for k, s in SIDES_MM.items()}
    else:
        long_ = RECT_SHORT * SIDES_MM["id1"][0] / SIDES_MM["id1"][1]
        short = long_ / aspect
        dst = [[0, 0], [long_, 0], [long_, short], [0, short]]
        pitches = {k: long_ * MRZ_PITCH_MM / s[0] for k, s in SIDES_MM.items()}
    size = (int(round(long_)), int(round(short)))
    hom = cv2.getPerspectiveTransform(
        np.asarray(quad, np.float32), np.asarray(dst, np.float32)
    )
    view = cv2.warpPerspective(gray, hom, size, flags=cv2.INTER_LINEAR)
    frame = np.array([[[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]], np.float32)
    seen = np.zeros(view.shape, np.uint8)
    cv2.fillConvexPoly(
        seen, cv2.perspectiveTransform(frame, hom)[0].astype(np.int32), 1
    )
    out = {k: 0.0 for k in pitches}
    band = int(ZONE * size[1])
    for rows in (slice(size[1] - band, None), slice(0, band)):
        ink = _ink(view[rows], seen[rows].astype(np.float32))
        if not len(ink):
            continue
        ac = _autocorrelation(ink)
        for k, p in pitches.items():
            # the print may not fill the outline (a scan with margins) and the
            # assumed camera adds a few per cent
            tried = max(_comb(ac, f * p) for f in np.linspace(*PITCH_RANGE, 13))
            out[k] = max(out[k], tried)
    return out


def mrz_kind(
    gray: np.ndarray, quad: np.ndarray, aspect: float, short_known: bool
) -> str | None:
    """'id1' or 'td3' from the MRZ's character pitch, or None without an MRZ
    in view (arguments as for `mrz_scores`)."""
    scores = mrz_scores(gray, quad, aspect, short_known)
    (second, _), (top, kind) = sorted((v, k) for k, v in scores.items())
    return kind if top >= MIN_PEAK and top - second >= MIN_MARGIN else None
