"""The document tools in a live call: live hints, snapshot analysis, torch challenge.

Every frame tool runs in a worker thread, never on the event loop. Results go to
the agent's console; hints also to the phone; images and figures are stored as
encrypted evidence. MRZ text and names are personal data: they go to the agent
and into encrypted evidence, never into logs or the case log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import unicodedata
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np

from media.document import Detection, detect_document, rectify
from media.faces import find_faces, portrait_face
from media.hologram import HologramResult, check_hologram, random_torch_pattern
from media.mrz_reader import read_mrz
from media.quality import HINTS, Quality, assess

logger = logging.getLogger(__name__)

# evidence kinds derived from snapshots and the torch challenge
ANALYSIS_KINDS = ("rectified", "portrait", "live_face", "hologram", "analysis")

HINT_INTERVAL = 0.5  # seconds between live quality analyses of one call
CHALLENGE_SECONDS = 4.0  # length of the random torch pattern
CHALLENGE_TAIL = 0.6  # frames kept after the last step: the last state and the lag
MAX_LAG = 0.6  # camera-to-server delay of the video searched for (seconds)
LAG_STEP = 0.02
MIN_LAG_CORR = 0.3  # weaker brightness-to-torch correlation measures no delay
CHALLENGE_FPS = 10.0  # frames kept per second for the hologram check
CHALLENGE_WIDTH = 640  # kept frames are scaled to this width (detection works at 640)
ACK_TIMEOUT = 1.5  # a torch step the phone has not confirmed by then fails the check
TILT_SECONDS = 4.0  # frames collected while the user tilts the card
TILT_VIEW = (320, 202)  # one rectified view in the tilt strip
SNAPSHOT_WAIT = 15.0  # a decision waits this long for running snapshot analyses

_pool = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 2, thread_name_prefix="analysis"
)

SendFn = Callable[[dict[str, Any]], Awaitable[None]]


# --- pure helpers (worker threads) -----------------------------------------------


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


def _hint_texts(keys: list[str]) -> dict[str, list[str]]:
    return {
        "de": [HINTS[k][0] for k in keys if k in HINTS],
        "en": [HINTS[k][1] for k in keys if k in HINTS],
    }


def _quality_figures(q: Quality) -> dict[str, Any]:
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
    image = frame.to_ndarray(format="bgr24")
    det = detect_document(image)
    if det is not None and previous is not None and frames_between > 1:
        # assess measures travel between consecutive frames; stand in a detection
        # one frame back on the straight path between the two analysed frames
        step = (previous.corners - det.corners) / frames_between
        previous = Detection(det.corners + step, det.kind, det.score, det.visible)
    q = assess(image, previous, det) if det is not None else assess(image)
    q.ms = (time.perf_counter() - started) * 1000  # conversion and detection too
    return q, (image.shape[1], image.shape[0])


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
        "quality": _quality_figures(q),
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
        return frame.to_ndarray(format="bgr24")
    height = round(frame.height * width / frame.width / 2) * 2
    return frame.to_ndarray(width=width, height=height, format="bgr24")


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


def _summary(data: dict[str, Any]) -> str:
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


class ChallengeError(Exception):
    """The torch challenge could not be run; the message is the reason."""


class CallAnalysis:
    """The document tools for one call: live hints, snapshots, torch challenge."""

    def __init__(
        self,
        svc: Any,
        call: Any,
        send_agent: SendFn,
        torch_acks: asyncio.Queue[dict[str, Any]],
        actor: str,
        identity: dict[str, Any] | None,
    ) -> None:
        self.svc = svc
        self.call = call
        self.case_id: str = call.case_id
        self.send_agent = send_agent
        self.torch_acks = torch_acks
        self.actor = actor
        self.identity = identity
        self.paused = False
        self.challenge: asyncio.Task[None] | None = None
        self._live: asyncio.Task[None] | None = None
        self._snapshots: set[asyncio.Task[None]] = set()
        self._phone_hints: list[str] | None = None
        self._last_hints: list[str] = []
        self._hinted: Any = None  # the phone connection the hints went to
        self._live_frame: av.VideoFrame | None = None
        self._live_count = 0
        self._live_detection: Detection | None = None

    def url(self, evidence_id: str) -> str:
        return f"/agent/api/cases/{self.case_id}/evidence/{evidence_id}"

    def start(self) -> None:
        self._live = asyncio.ensure_future(self._live_loop())

    async def close(self) -> None:
        """Stop live hints and the challenge; let snapshot analyses finish."""
        for task in (self._live, self.challenge):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._snapshots:
            _, pending = await asyncio.wait(self._snapshots, timeout=SNAPSHOT_WAIT)
            for task in pending:
                logger.warning("case %s x snapshot analysis abandoned", self.case_id)
                task.cancel()

    async def _store(
        self, kind: str, media_type: str, data: bytes, size: tuple[int, int] | None
    ) -> str:
        width, height = size or (None, None)
        return await self.svc.evidence.add(
            self.case_id, kind, media_type, data, width, height, self.call.agent_id
        )

    async def _store_image(self, kind: str, image: np.ndarray) -> str:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(_pool, encode_png, image)
        return await self._store(
            kind, "image/png", data, (image.shape[1], image.shape[0])
        )

    async def _store_json(self, body: dict[str, Any]) -> str:
        data = json.dumps(body, separators=(",", ":")).encode()
        return await self._store("analysis", "application/json", data, None)

    # live hints

    async def _live_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if not self.paused:
                await self._live_once()
            await asyncio.sleep(max(0.05, started + HINT_INTERVAL - loop.time()))

    async def _live_once(self) -> None:
        """Analyse the tap's latest frame unless it was analysed already."""
        tap = self.call.media.tap
        tap.want()
        frame = tap.frame
        if frame is None or frame is self._live_frame:
            return
        between = max(1, tap.count - self._live_count) if self._live_frame else 1
        self._live_frame, self._live_count = frame, tap.count
        loop = asyncio.get_running_loop()
        try:
            q, size = await loop.run_in_executor(
                _pool, live_quality, frame, self._live_detection, between
            )
        except Exception:
            logger.exception("case %s x live analysis failed", self.case_id)
            return
        self._live_detection = q.detection
        logger.debug(
            "case %s - live quality %s over %d frames: %.0f ms",
            self.case_id,
            q.hints,
            between,
            q.ms,
        )
        await self._send_quality(q, size)

    async def _send_quality(self, q: Quality, size: tuple[int, int]) -> None:
        det = q.detection
        await self.send_agent(
            {
                "type": "quality",
                "corners": det.to_json()["corners"] if det is not None else None,
                "kind": det.kind if det is not None else None,
                "frame_size": list(size),
                "figures": _quality_figures(q),
                "hints": q.hints,
                "texts": _hint_texts(q.hints),
            }
        )
        # the phone hears about the document only while one is in view (the user
        # may be showing their face on the agent's request), and only hints seen
        # in two analyses running, so that one odd frame does not flicker there
        hints = [h for h in q.hints if h in self._last_hints] if q.found else []
        self._last_hints = q.hints
        phone = self.call.phone
        # a phone that rejoined the call has an empty hint box
        if phone is not None and (
            hints != self._phone_hints or phone is not self._hinted
        ):
            self._phone_hints, self._hinted = hints, phone
            await phone.send(
                {"type": "hints", "hints": hints, "texts": _hint_texts(hints)}
            )

    async def _clear_phone_hints(self) -> None:
        if self._phone_hints and self.call.phone is not None:
            await self.call.phone.send({"type": "hints", "hints": [], "texts": {}})
        self._phone_hints = []

    # snapshots

    def snapshot(self, evidence_id: str, kind: str, image: np.ndarray) -> None:
        """Analyse a stored snapshot in the background; the agent gets `analysis`."""
        task = asyncio.ensure_future(self._analyse(evidence_id, kind, image))
        self._snapshots.add(task)
        task.add_done_callback(self._snapshots.discard)

    async def _analyse(self, evidence_id: str, kind: str, image: np.ndarray) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                _pool, analyse_snapshot, image, self.identity
            )
            urls = {}
            for name, img in result.images.items():
                urls[name] = self.url(await self._store_image(name, img))
            body = {"snapshot": evidence_id, "kind": kind, **result.data}
            body["images"] = urls
            json_id = await self._store_json(body)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("case %s x snapshot analysis failed", self.case_id)
            await self.send_agent(
                {
                    "type": "error",
                    "error": {
                        "code": "analysis_failed",
                        "message": f"the analysis of snapshot {evidence_id} failed",
                    },
                }
            )
            return
        summary = _summary(result.data)
        await self.svc.store.log(
            self.case_id, "system", "analysis", f"{kind} {summary}"
        )
        logger.info("case %s - snapshot %s analysed: %s", self.case_id, kind, summary)
        await self.send_agent(
            {"type": "analysis", **body, "analysis_url": self.url(json_id)}
        )

    # the torch challenge

    @property
    def challenge_running(self) -> bool:
        return self.challenge is not None and not self.challenge.done()

    def start_challenge(self) -> list[tuple[float, float]]:
        """Pick the random pattern and run the challenge in the background."""
        pattern = random_torch_pattern(CHALLENGE_SECONDS)
        self.challenge = asyncio.ensure_future(self._challenge(pattern))
        return pattern

    async def _challenge(self, pattern: list[tuple[float, float]]) -> None:
        started = time.monotonic()
        spec = ",".join(f"{a:.2f}-{b:.2f}" for a, b in pattern)
        await self.svc.store.log(
            self.case_id, self.actor, "torch_challenge", f"start pattern={spec}"
        )
        logger.info("case %s - torch challenge started", self.case_id)
        self.paused = True
        try:
            await self._clear_phone_hints()
            if self.call.torch.get("available") is False:
                body = await self._tilt("the phone reported no controllable torch")
            else:
                body = await self._run_pattern(pattern)
        except asyncio.CancelledError:
            await self._torch_off()
            await self.svc.store.log(
                self.case_id, self.actor, "torch_challenge", "cancelled"
            )
            raise
        except Exception:
            logger.exception("case %s x torch challenge failed", self.case_id)
            body = _inconclusive("the check failed on the server")
        finally:
            self.paused = False
        body["seconds"] = round(time.monotonic() - started, 2)
        await self.svc.store.log(
            self.case_id,
            self.actor,
            "torch_challenge",
            f"result verdict={body['verdict']} score={body['score']}",
        )
        logger.info(
            "case %s - torch challenge: %s (%.2f)",
            self.case_id,
            body["verdict"],
            body["score"],
        )
        await self.send_agent({"type": "hologram", **body})

    async def _tilt(self, why: str) -> dict[str, Any]:
        """Without a torch: the user tilts the card; the agent gets a strip of
        rectified frames from the tilt to judge the hologram by eye."""
        await self.svc.store.log(
            self.case_id, self.actor, "torch_challenge", f"tilt variant: {why}"
        )
        if self.call.phone is not None:
            await self.call.phone.send(
                {"type": "instruction", "key": "tilt_card", "text": ""}
            )
        t0 = time.monotonic()
        frames, _ = await self._collect(t0, t0 + TILT_SECONDS)
        loop = asyncio.get_running_loop()
        strip = await loop.run_in_executor(_pool, tilt_strip, frames)
        # TODO(media.hologram tilt analysis): judge torch-off tilt sequences too
        body = _inconclusive(
            f"{why}: the user was asked to tilt the card; judge the hologram "
            "in the strip of tilted views",
            variant="tilt",
        )
        body["frames"] = len(frames)
        if strip is not None:
            body["overlay_url"] = self.url(await self._store_image("hologram", strip))
        return body

    async def _step(self, index: int, on: bool) -> float:
        """Switch the phone's torch and wait for its acknowledgement; returns the
        acknowledgement's time."""
        phone = self.call.phone
        if phone is None:
            raise ChallengeError("the phone left the call")
        while not self.torch_acks.empty():
            self.torch_acks.get_nowait()
        sent = time.monotonic()
        await phone.send({"type": "torch", "on": on})
        try:
            ack = await asyncio.wait_for(self.torch_acks.get(), ACK_TIMEOUT)
        except TimeoutError:
            raise ChallengeError(
                f"the phone did not confirm torch step {index} within {ACK_TIMEOUT} s"
            ) from None
        at = time.monotonic()
        await self.svc.store.log(
            self.case_id,
            self.actor,
            "torch_step",
            f"{index} on={on} ack_ms={(at - sent) * 1000:.0f} "
            f"reported_on={ack['on']} available={ack['available']}",
        )
        if not ack["available"]:
            raise _NoTorch()
        if ack["on"] != on:
            raise ChallengeError(
                f"the phone's torch did not follow step {index} "
                f"(asked {'on' if on else 'off'})"
            )
        return at

    async def _run_pattern(self, pattern: list[tuple[float, float]]) -> dict[str, Any]:
        steps = [(0.0, False)]
        for a, b in pattern:
            steps += [(a, True), (b, False)]
        if self.call.phone is not None:
            await self.call.phone.send(
                {"type": "instruction", "key": "hold_still", "text": ""}
            )
        t0 = time.monotonic()
        end = t0 + steps[-1][0] + CHALLENGE_TAIL
        collector = asyncio.ensure_future(self._collect(t0, end))
        lit: list[tuple[float, float]] = []
        try:
            on_at: float | None = None
            for index, (at, on) in enumerate(steps):
                await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
                acked = await self._step(index, on) - t0
                if on:
                    on_at = acked
                elif on_at is not None:
                    lit.append((on_at, acked))
                    on_at = None
            frames, times = await collector
        except _NoTorch:
            collector.cancel()
            return await self._tilt("the phone reported no controllable torch")
        except ChallengeError as exc:
            collector.cancel()
            await self._torch_off()
            return _inconclusive(str(exc))
        finally:
            if not collector.done():
                collector.cancel()
        return await self._judge(frames, times, lit, pattern)

    async def _torch_off(self) -> None:
        if self.call.phone is not None:
            await self.call.phone.send({"type": "torch", "on": False})

    async def _collect(
        self, t0: float, end: float
    ) -> tuple[list[np.ndarray], list[float]]:
        """Frames from the tap until `end`, at most CHALLENGE_FPS, with their
        arrival times after t0."""
        tap = self.call.media.tap
        loop = asyncio.get_running_loop()
        kept: list[tuple[float, asyncio.Future[np.ndarray]]] = []
        last: av.VideoFrame | None = None
        next_t = -1.0
        while time.monotonic() < end:
            try:
                frame = await tap.next_frame(timeout=0.25)
            except LookupError:
                continue
            t = tap.received_at - t0
            if frame is last or t < next_t:
                continue
            last, next_t = frame, t + 1 / CHALLENGE_FPS
            kept.append((t, loop.run_in_executor(_pool, small_bgr, frame)))
        frames = await asyncio.gather(*(f for _, f in kept))
        return list(frames), [t for t, _ in kept]

    async def _judge(
        self,
        frames: list[np.ndarray],
        times: list[float],
        lit: list[tuple[float, float]],
        pattern: list[tuple[float, float]],
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        result, lag = await loop.run_in_executor(
            _pool, judge_frames, frames, times, lit
        )
        body = result.to_json()
        body["variant"] = "torch"
        body["pattern"] = [list(iv) for iv in pattern]
        body["lit"] = [[round(a + lag, 3), round(b + lag, 3)] for a, b in lit]
        body["lag_s"] = round(lag, 3)
        body["frames"] = len(frames)
        body["overlay_url"] = None
        if result.overlay is not None:
            body["overlay_url"] = self.url(
                await self._store_image("hologram", result.overlay)
            )
        body["analysis_url"] = self.url(await self._store_json(body))
        return body


class _NoTorch(Exception):
    """The phone says it cannot switch its torch."""


def _inconclusive(reason: str, variant: str = "torch") -> dict[str, Any]:
    return {
        "verdict": "inconclusive",
        "score": 0.0,
        "reason": reason,
        "variant": variant,
        "intervals": [],
        "figures": {},
        "overlay_url": None,
    }
