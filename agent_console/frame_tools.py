"""The frame tools as the agent console uses them: pure functions, run in threads.

Snapshot analysis (rectified document, MRZ, identity comparison, faces), live
quality hints, and the torch challenge's measurements (delay, verdict, tilt strip).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np

from media.document import Detection, detect_document, rectify
from media.faces import find_faces, portrait_face
from media.frametap import frame_to_bgr
from media.hologram import HologramResult, check_hologram
from media.mrz_reader import read_mrz
from media.quality import HINTS, Quality, assess

logger = logging.getLogger(__name__)

MAX_LAG = 0.6  # camera-to-server delay of the video searched for (seconds)
LAG_STEP = 0.02
MIN_LAG_CORR = 0.3  # weaker brightness-to-torch correlation measures no delay
CHALLENGE_WIDTH = 640  # kept frames are scaled to this width (detection works at 640)
TILT_VIEW = (320, 202)  # one rectified view in the tilt strip


def encode_png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


# ICAO Doc 9303 part 3 transliteration of the letters German names use most
_TRANSLIT = {
    "Ä": "AE",
    "Ö": "OE",
    "Ü": "UE",
    "ß": "SS",
    "Æ": "AE",
    "Ø": "OE",
    "Å": "AA",
}


def mrz_name(text: str) -> str:
    """A name as the MRZ writes it: upper case, transliterated, single spaces."""
    out = []
    for char in text.upper():
        if char in _TRANSLIT:
            out.append(_TRANSLIT[char])
            continue
        base = unicodedata.normalize("NFKD", char)[0]
        out.append(base if "A" <= base <= "Z" else " ")
    return " ".join("".join(out).split())


def _name_status(expected: str | None, read: str | None) -> str:
    if not expected or not read:
        return "missing"
    want, got = mrz_name(expected), mrz_name(read)
    if want == got:
        return "match"
    # long names are cut at the end of the MRZ field (ICAO 9303 part 3, 6.b)
    if len(got) >= 8 and want.startswith(got):
        return "truncated"
    return "mismatch"


def compare_identity(
    fields: dict[str, str] | None, identity: dict[str, Any] | None
) -> dict[str, Any]:
    """Does the MRZ name the case's person? Per field: match, truncated, mismatch
    or missing; `all` is true when every field matches (truncation counts)."""
    fields, identity = fields or {}, identity or {}
    out: dict[str, Any] = {
        "surname": _name_status(identity.get("surname"), fields.get("surname")),
        "given_names": _name_status(
            identity.get("given_names"), fields.get("given_names")
        ),
    }
    want, got = identity.get("birth_date"), fields.get("birth_date")
    if not want or not got:
        out["birth_date"] = "missing"
    elif want == got:
        out["birth_date"] = "match"
    else:
        # an MRZ date whose century could not be told apart: compare YYMMDD
        short = want.replace("-", "")[2:]
        out["birth_date"] = "match" if got == short else "mismatch"
    out["all"] = all(out[k] in ("match", "truncated") for k in list(out))
    return out


def hint_texts(keys: list[str]) -> dict[str, list[str]]:
    return {
        "de": [HINTS[k][0] for k in keys if k in HINTS],
        "en": [HINTS[k][1] for k in keys if k in HINTS],
    }


def quality_figures(q: Quality) -> dict[str, Any]:
    figures = q.to_json()
    for key in ("hints", "hints_de", "hints_en"):
        figures.pop(key, None)
    return figures


def live_quality(
    frame: av.VideoFrame, previous: Detection | None, frames_between: int
) -> tuple[Quality, tuple[int, int]]:
    """Quality of the latest frame; motion is per frame even when the previous
    analysed frame lies `frames_between` frames back."""
    started = time.perf_counter()
    image = frame_to_bgr(frame)
    det = detect_document(image)
    if det is not None and previous is not None and frames_between > 1:
        # assess measures travel between consecutive frames; stand in a detection
        # one frame back on the straight path between the two analysed frames
        step = (previous.corners - det.corners) / frames_between
        previous = Detection(det.corners + step, det.kind, det.score, det.visible)
    q = assess(image, previous, det) if det is not None else assess(image)
    q.ms = (time.perf_counter() - started) * 1000  # conversion and detection too
    return q, (image.shape[1], image.shape[0])


@dataclass
class Candidate:
    """A frame the live loop analysed, kept a moment for choosing a still."""

    at: float  # when it arrived (time.monotonic)
    frame: av.VideoFrame
    score: float  # `Quality.score`: 0 without a document


def pick_still(
    fresh: Candidate, recent: list[Candidate], now: float, within: float
) -> tuple[Candidate, int]:
    """The still to keep for a document side: the fresh frame, or an analysed frame
    of the last `within` seconds that scores better (sharper, less glare, less
    motion, larger); returns it and how many frames were compared."""
    pool = [c for c in recent if now - c.at <= within and c.frame is not fresh.frame]
    best = max(pool, key=lambda c: c.score, default=None)
    chosen = best if best is not None and best.score > fresh.score else fresh
    return chosen, len(pool) + 1


def _inside(corners: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    centre = (float(x + w / 2), float(y + h / 2))
    quad = np.asarray(corners, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(quad, centre, False) >= 0


@dataclass
class SnapshotAnalysis:
    """What the tools found in one snapshot: JSON-ready figures and the images."""

    data: dict[str, Any]
    images: dict[str, np.ndarray] = field(default_factory=dict)


def analyse_snapshot(
    image: np.ndarray, identity: dict[str, Any] | None
) -> SnapshotAnalysis:
    """Rectified document, MRZ with identity comparison, face crops, quality."""
    started = time.perf_counter()
    q = assess(image)
    det = q.detection
    images: dict[str, np.ndarray] = {}
    doc = rectify(image, det.corners, det.kind) if det is not None else None
    if doc is not None:
        images["rectified"] = doc

    # faces: the live face is one outside the document's outline
    live = [
        f for f in find_faces(image) if det is None or not _inside(det.corners, f.box)
    ]
    if live:
        images["live_face"] = live[0].crop
    portrait = portrait_face(doc) if doc is not None else None
    if portrait is not None:
        images["portrait"] = portrait.crop

    # the MRZ on the rectified document, else anywhere in the frame
    reading = read_mrz(doc) if doc is not None else None
    if reading is None or not reading.found:
        reading = read_mrz(image)
    mrz = reading.to_dict()
    data = {
        "width": image.shape[1],
        "height": image.shape[0],
        "document": det.to_json() if det is not None else None,
        "quality": quality_figures(q),
        "hints": q.hints,
        "mrz": mrz,
        "identity": compare_identity(mrz.get("fields"), identity)
        if mrz["found"]
        else None,
        "faces": {"live": len(live), "portrait": portrait is not None},
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return SnapshotAnalysis(data, images)


def small_bgr(frame: av.VideoFrame, width: int = CHALLENGE_WIDTH) -> np.ndarray:
    """A decoded frame as BGR, scaled down to `width` when wider."""
    if frame.width <= width:
        return frame_to_bgr(frame)
    height = round(frame.height * width / frame.width / 2) * 2
    return frame_to_bgr(frame, width, height)


def centre_brightness(image: np.ndarray) -> float:
    """Mean grey level of the middle half of a frame, where the card is held."""
    h, w = image.shape[:2]
    return float(image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean())


def _lit(times: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    return np.array([any(a <= t < b for a, b in intervals) for t in times])


def estimate_lag(
    times: list[float], brightness: list[float], lit: list[tuple[float, float]]
) -> float:
    """The delay between the phone's torch acknowledgements and the frames that
    show the light, as seen at the server (encoding, network, decoding: 0.05 to
    0.5 s). The lag at which the frames' brightness follows the pattern best; the
    middle of the best run when sparse frames leave a plateau. A replayed video
    with its own pattern follows at no lag, and the check still finds it out."""
    t = np.asarray(times, np.float64)
    b = np.asarray(brightness, np.float64)
    lags = np.arange(0.0, MAX_LAG + 1e-9, LAG_STEP)
    scores = np.full(len(lags), -np.inf)
    for i, lag in enumerate(lags):
        on = _lit(t, [(x + lag, y + lag) for x, y in lit]).astype(np.float64)
        if on.min() == on.max():
            continue
        bm, om = b - b.mean(), on - on.mean()
        scores[i] = (bm * om).sum() / (np.sqrt((bm**2).sum() * (om**2).sum()) + 1e-9)
    if not np.isfinite(scores).any() or scores.max() < MIN_LAG_CORR:
        return 0.0  # nothing follows the torch: no delay to measure
    best = np.flatnonzero(scores >= scores.max() - 1e-6)
    # the longest run of neighbouring best lags, and its middle
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    run = max(runs, key=len)
    return float(lags[run[len(run) // 2]])


def judge_frames(
    frames: list[np.ndarray], times: list[float], lit: list[tuple[float, float]]
) -> tuple[HologramResult, float]:
    """The hologram check on frames timed by their arrival, with the torch
    intervals moved by the measured video delay; returns the result and delay."""
    lag = estimate_lag(times, [centre_brightness(f) for f in frames], lit)
    shifted = [(a + lag, b + lag) for a, b in lit]
    return check_hologram(frames, times, shifted), lag


def tilt_strip(frames: list[np.ndarray], count: int = 6) -> np.ndarray | None:
    """Rectified views of the document from evenly spread frames, three a row."""
    views = []
    for k in np.linspace(0, len(frames) - 1, min(count, len(frames))).astype(int):
        det = detect_document(frames[k])
        if det is not None:
            views.append(rectify(frames[k], det.corners, det.kind, TILT_VIEW))
    if not views:
        return None
    while len(views) % 3:
        views.append(np.zeros_like(views[0]))
    rows = [np.hstack(views[i : i + 3]) for i in range(0, len(views), 3)]
    return np.vstack(rows)


def summary_line(data: dict[str, Any]) -> str:
    """A case-log line about an analysis: outcomes only, no personal data."""
    doc = data["document"]
    mrz = data["mrz"]
    state = "none"
    if mrz["found"]:
        state = "valid" if mrz["valid"] else "invalid"
    ident = data["identity"]
    match = "n/a" if ident is None else "match" if ident["all"] else "differs"
    parts = [
        f"document={doc['kind'] if doc else 'none'}",
        f"mrz={state}",
        f"expired={mrz.get('expired')}",
        f"accepted={mrz.get('accepted')}",
        f"identity={match}",
        f"live_faces={data['faces']['live']}",
        f"portrait={data['faces']['portrait']}",
        f"ms={data['ms']:.0f}",
    ]
    return " ".join(parts)


# --- the call ----------------------------------------------------------------------
