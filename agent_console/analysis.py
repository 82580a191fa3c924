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
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np

from agent_console.frame_tools import (
    Candidate,
    analyse_snapshot,
    encode_png,
    hint_texts,
    judge_frames,
    live_quality,
    pick_still,
    quality_figures,
    small_bgr,
    summary_line,
    tilt_strip,
)
from media.document import Detection
from media.frame_size import frame_problem
from media.hologram import random_torch_pattern
from media.quality import Quality

logger = logging.getLogger(__name__)

# evidence kinds derived from snapshots and the torch challenge
ANALYSIS_KINDS = ("rectified", "portrait", "live_face", "hologram", "analysis")

HINT_INTERVAL = 0.5  # seconds between live quality analyses of one call
CHALLENGE_SECONDS = 4.0  # length of the random torch pattern
CHALLENGE_TAIL = 0.6  # frames kept after the last step: the last state and the lag
CHALLENGE_FPS = 10.0  # frames kept per second for the hologram check
ACK_TIMEOUT = 1.5  # a torch step the phone has not confirmed by then fails the check
TILT_SECONDS = 4.0  # frames collected while the user tilts the card
SNAPSHOT_WAIT = 15.0
# a document still may come from the frames analysed in the last moments
STILL_WITHIN = 1.5
RECENT_FRAMES = 6  # a decision waits this long for running snapshot analyses

_pool = ThreadPoolExecutor(
    max_workers=os.cpu_count() or 2, thread_name_prefix="analysis"
)

SendFn = Callable[[dict[str, Any]], Awaitable[None]]


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
        # analysed frames of the last moments, for choosing a document still
        self._recent: deque[Candidate] = deque(maxlen=RECENT_FRAMES)
        self._size_warned = False

    def _too_small(self, frame: av.VideoFrame) -> bool:
        """True for a frame the tools cannot look at (a 3000x4 stream); warned
        once per call, with the size only."""
        problem = frame_problem((frame.height, frame.width))
        if problem and not self._size_warned:
            self._size_warned = True
            logger.warning("case %s x phone video %s", self.case_id, problem)
        return problem is not None

    async def best_still(
        self, frame: av.VideoFrame, arrived: float
    ) -> tuple[av.VideoFrame, float, int]:
        """For a document side: `frame`, or a better one of the last
        STILL_WITHIN seconds; returns the frame, its arrival and the number of
        frames compared."""
        if self._too_small(frame):
            return frame, arrived, 1
        loop = asyncio.get_running_loop()
        q, _ = await loop.run_in_executor(_pool, live_quality, frame, None, 1)
        chosen, compared = pick_still(
            Candidate(arrived, frame, q.score),
            list(self._recent),
            time.monotonic(),
            STILL_WITHIN,
        )
        return chosen.frame, chosen.at, compared

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
        if frame is None or frame is self._live_frame or self._too_small(frame):
            return
        between = max(1, tap.count - self._live_count) if self._live_frame else 1
        self._live_frame, self._live_count = frame, tap.count
        arrived = tap.received_at
        loop = asyncio.get_running_loop()
        try:
            q, size = await loop.run_in_executor(
                _pool, live_quality, frame, self._live_detection, between
            )
        except Exception:
            logger.exception("case %s x live analysis failed", self.case_id)
            return
        self._live_detection = q.detection
        self._recent.append(Candidate(arrived, frame, q.score))
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
                "figures": quality_figures(q),
                "hints": q.hints,
                "texts": hint_texts(q.hints),
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
                {"type": "hints", "hints": hints, "texts": hint_texts(hints)}
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
        summary = summary_line(result.data)
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
