"""Frames too small or too narrow for the document tools (a 3000x4 phone stream,
a 3000x3 image): every tool finds nothing instead of failing, and a call whose
phone sends such frames goes on."""

from __future__ import annotations

import asyncio
import logging
import time

import av
import numpy as np
import pytest
from aiortc import AudioStreamTrack, VideoStreamTrack

from agent_console.frame_tools import analyse_snapshot, live_quality
from identdesk.clients import AgentClient, PhoneClient
from media.document import detect_document, track_document
from media.faces import find_faces, portrait_face
from media.frame_size import frame_problem
from media.hologram import check_hologram, check_tilt
from media.mrz_locate import find_lines
from media.mrz_reader import read_mrz
from media.quality import assess
from tests.test_analysis import open_call

THIN = [(3, 3000), (4, 3000), (3000, 3), (20, 20), (40, 400)]


@pytest.mark.parametrize(("h", "w"), THIN)
def test_frame_tools_find_nothing_in_thin_frames(h: int, w: int) -> None:
    frame = np.full((h, w, 3), 128, np.uint8)
    frame[:, ::7] = 20  # some edges to look at
    assert frame_problem(frame) is not None
    assert detect_document(frame) is None
    assert track_document(frame, None) is None
    q = assess(frame)
    assert (q.found, q.score, q.hints) == (False, 0.0, ["no_document"])
    assert find_faces(frame) == [] and portrait_face(frame) is None
    assert find_lines(frame[..., 0]) == [] or min(h, w) >= 32
    assert read_mrz(frame).found is False
    times = [i / 10 for i in range(20)]
    result = check_hologram([frame] * 20, times, [(0.5, 1.0)])
    assert (result.verdict, result.reason) == (
        "inconclusive",
        f"frames {frame_problem(frame)}",
    )
    assert check_tilt([frame] * 20, times).verdict == "inconclusive"
    snapshot = analyse_snapshot(frame, None)
    assert snapshot.data["document"] is None and snapshot.images == {}


def test_frame_problem_words() -> None:
    assert frame_problem((3, 3000)) == "too narrow to analyse (3000 x 3)"
    assert frame_problem((20, 20)) == "too small to analyse (20 x 20)"
    assert frame_problem((720, 1280)) is None
    assert frame_problem((40, 330)) == "too narrow to analyse (330 x 40)"


def test_live_quality_of_a_thin_phone_frame() -> None:
    frame = av.VideoFrame.from_ndarray(np.zeros((4, 3000, 3), np.uint8), "bgr24")
    q, size = live_quality(frame, None, 1)
    assert size == (3000, 4) and q.found is False and q.score == 0.0


class ThinTrack(VideoStreamTrack):
    """A phone camera sending 3000x4 frames at aiortc's 30 fps."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        shade = 60 + pts // 3000 % 5 * 10
        frame = av.VideoFrame.from_ndarray(
            np.full((4, 3000, 3), shade, np.uint8), format="bgr24"
        )
        frame.pts, frame.time_base = pts, time_base
        return frame


@pytest.mark.parametrize("server", [0, 2], indirect=True)
async def test_call_with_thin_frames_warns_once_and_captures(server, caplog):
    caplog.set_level(logging.INFO)
    phone = PhoneClient(
        server.http, server.base, tracks=lambda: [ThinTrack(), AudioStreamTrack()]
    )
    agent = AgentClient(server.http, server.base)
    try:
        case_id = await open_call(server, phone, agent)

        # the live analysis meets the frames and says so once, with the size
        warning = f"case {case_id} x phone video too narrow to analyse (3000 x 4)"
        deadline = time.monotonic() + 15
        while warning not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert warning in caplog.text

        # capturing a document side (best_still) works and the socket stays open
        for kind in ("front", "back"):
            snap = await agent.capture(kind)
            assert (snap["width"], snap["height"], snap["compared"]) == (3000, 4, 1)
        pong = await agent.request({"type": "ping"}, "pong")
        assert pong == {"type": "pong"}
        assert caplog.text.count("phone video too narrow") == 1
        assert "Traceback" not in caplog.text and "x message failed" not in caplog.text
    finally:
        await phone.close()
        await agent.close()
