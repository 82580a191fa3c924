"""Document tools in the live call: live hints, snapshot analysis, torch challenge.

A real server on loopback, a phone client whose camera plays a rendered specimen
card that lights up when the phone's torch is on, and the agent client.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import json
import logging
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
import pytest
from aiortc import AudioStreamTrack, VideoStreamTrack

from agent_console.analysis import ANALYSIS_KINDS
from agent_console.frame_tools import (
    Candidate,
    analyse_snapshot,
    compare_identity,
    estimate_lag,
    live_quality,
    mrz_name,
    pick_still,
)
from identdesk.clients import (
    AgentClient,
    PhoneClient,
    activate_and_consent,
    create_case,
)
from media import render
from media.document import corner_error
from tests.conftest import Server

WIDTH, HEIGHT, FPS = 960, 540, 15


class DocumentTrack(VideoStreamTrack):
    """A phone camera filming a rendered specimen card; each frame is lit when
    `lit()` says the phone's torch is on."""

    def __init__(self, scene: render.SceneRenderer, lit: Callable[[], bool]) -> None:
        super().__init__()
        self.scene = scene
        self.lit = lit
        self.index = 0
        self.started: float | None = None
        self.corners: np.ndarray | None = None

    async def recv(self) -> av.VideoFrame:
        if self.started is None:
            self.started = time.monotonic()
        due = self.started + self.index / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = self.index / FPS
        loop = asyncio.get_running_loop()
        image, self.corners = await loop.run_in_executor(
            None, self.scene.frame, t, self.lit()
        )
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = int(self.index * 90000 / FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self.index += 1
        return frame


async def _call(
    server: Server, attack: str = "none", has_torch: bool = True
) -> tuple[PhoneClient, AgentClient, DocumentTrack, str]:
    doc = render.draw_document("id1", seed=0)
    scene = render.SceneRenderer(
        doc, width=WIDTH, height=HEIGHT, seed=3, attack=attack, motion=0.0
    )
    holder: list[PhoneClient] = []
    track = DocumentTrack(scene, lambda: holder[0].torch_on)
    phone = PhoneClient(
        server.http,
        server.base,
        tracks=lambda: [track, AudioStreamTrack()],
        has_torch=has_torch,
    )
    holder.append(phone)
    agent = AgentClient(server.http, server.base)
    case_id = await open_call(server, phone, agent)
    return phone, agent, track, case_id


async def open_call(server: Server, phone: PhoneClient, agent: AgentClient) -> str:
    """A new case, its phone joined and taken by the agent, whose media runs
    (5 frames received): the case's id."""
    case = await create_case(server.http, server.base, server.api_key)
    consent = await activate_and_consent(server.http, case["activation_url"])
    await phone.join(consent["tan"])
    await agent.login(server.agent_name, server.agent_password)
    await agent.take_case()
    await agent.connect_media()
    await agent.wait_frames(5, timeout=20)
    return str(case["id"])


async def _fetch_image(agent: AgentClient, url: str) -> np.ndarray:
    status, body = await agent.fetch(url)
    assert status == 200, url
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_mrz_name_transliterates_like_icao() -> None:
    assert mrz_name("Müller-Lüdenscheidt") == "MUELLER LUEDENSCHEIDT"
    assert mrz_name("Strauß") == "STRAUSS"
    assert mrz_name("José  María") == "JOSE MARIA"


def test_compare_identity_match_truncation_and_mismatch() -> None:
    identity = {
        "surname": "Mustermann",
        "given_names": "Erika Sophie Charlotte Annemarie",
        "birth_date": "1983-08-12",
    }
    fields = {
        "surname": "MUSTERMANN",
        "given_names": "ERIKA SOPHIE CHARL",
        "birth_date": "1983-08-12",
    }
    got = compare_identity(fields, identity)
    assert got == {
        "surname": "match",
        "given_names": "truncated",
        "birth_date": "match",
        "all": True,
    }
    got = compare_identity({**fields, "birth_date": "1983-08-13"}, identity)
    assert got["birth_date"] == "mismatch" and got["all"] is False
    got = compare_identity({**fields, "surname": "MUSTERFRAU"}, identity)
    assert got["surname"] == "mismatch" and got["all"] is False
    assert compare_identity(None, identity)["surname"] == "missing"


def test_estimate_lag_finds_the_video_delay() -> None:
    lit = [(0.5, 1.2), (2.0, 2.6), (3.1, 3.9)]
    times = [i / 9 for i in range(40)]
    for delay in (0.0, 0.25, 0.45):
        brightness = [
            180.0 if any(a + delay <= t < b + delay for a, b in lit) else 150.0
            for t in times
        ]
        assert abs(estimate_lag(times, brightness, lit) - delay) <= 0.07, delay
    # no response at all: no delay is made up
    assert estimate_lag(times, [150.0] * len(times), lit) == 0.0


def test_analyse_snapshot_separates_live_face_from_document_portrait() -> None:
    scene = render.SceneRenderer(
        render.draw_document("id1", seed=0), width=1280, height=720, seed=3, motion=0
    )
    frame, corners = scene.frame(0.0, False)
    assert corners[:, 0].max() < 990  # room on the desk right of the card
    render.draw_portrait(frame, (1000, 200, 260, 320))  # the holder beside the card
    identity = {
        "surname": "Mustermann",
        "given_names": "Erika",
        "birth_date": "1983-08-12",
    }
    result = analyse_snapshot(frame, identity)
    assert result.data["faces"] == {"live": 1, "portrait": True}
    assert {"rectified", "portrait", "live_face"} <= set(result.images)
    assert result.images["rectified"].shape[:2] == (638, 1011)
    assert result.data["mrz"]["valid"] is True
    assert result.data["identity"]["all"] is True
    # the live face crop comes from the desk, not from the card
    assert result.images["live_face"].shape[1] < 400


def assert_specimen_mrz(mrz: dict) -> None:
    """Every check digit passes; the reader may still hold it back as uncertain
    (a name glyph softened by the video codec), but never reports it wrong."""
    assert all(mrz["checks"].values()), mrz["checks"]
    if not mrz["valid"]:
        assert mrz["uncertain_fields"], mrz.get("reason")
        assert mrz["reason"].startswith("uncertain characters"), mrz["reason"]


@pytest.mark.parametrize(
    "server", [0, 2], indirect=True, ids=["in-process", "media-workers"]
)
async def test_analysis_live_hints_snapshot_and_genuine_hologram(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    phone, agent, track, case_id = await _call(server)
    try:
        # live quality: the outline lies on the rendered card's true corners
        deadline = time.monotonic() + 20
        while True:
            quality = await agent.log.expect("quality", timeout=15)
            if quality["corners"] is not None or time.monotonic() > deadline:
                break
        assert quality["frame_size"] == [WIDTH, HEIGHT]
        assert quality["corners"] is not None, quality
        err = corner_error(np.array(quality["corners"]), track.corners)
        assert err < 0.03, f"outline off by {err:.3f} of the diagonal"
        assert quality["figures"]["found"] is True
        assert set(quality["texts"]) == {"de", "en"}
        hints = await phone.log.expect("hints", timeout=10)
        assert set(hints["texts"]) == {"de", "en"}

        # a capture yields an analysis: the specimen's MRZ, the case's identity
        mark = agent.log.mark()
        snap = await agent.capture("front")
        # the still was chosen among the frames the live loop analysed just before
        assert snap["compared"] >= 2 and snap["age_s"] <= 2.0, snap
        result = await agent.log.expect("analysis", timeout=40, since=mark)
        assert result["snapshot"] == snap["id"]
        mrz = result["mrz"]
        assert_specimen_mrz(mrz)
        assert mrz["format"] == "TD1"
        assert mrz["fields"]["surname"] == "MUSTERMANN"
        assert mrz["expired"] is False
        assert mrz["accepted"] is mrz["valid"]  # an uncertain reading is not accepted
        assert result["identity"]["all"] is True, result["identity"]
        rectified = await _fetch_image(agent, result["images"]["rectified"])
        assert rectified.shape[:2] == (638, 1011)
        status, stored = await agent.fetch(result["analysis_url"])
        assert status == 200
        assert json.loads(stored)["mrz"]["checks"] == mrz["checks"]

        # the torch challenge on a genuine card
        mark = agent.log.mark()
        await agent.send({"type": "torch_challenge"})
        started = await agent.log.expect("hologram_started", since=mark)
        holo = await agent.log.expect("hologram", timeout=60, since=mark)
        assert holo["verdict"] == "genuine", holo
        assert holo["score"] > 0.5
        assert holo["intervals"]
        overlay = await _fetch_image(agent, holo["overlay_url"])
        assert overlay.shape[1] > 100
        assert len(phone.torch_log) == started["steps"]
        assert phone.torch_log[0] is False and phone.torch_on is False
        assert all(a != b for a, b in itertools.pairwise(phone.torch_log))

        # images and figures are encrypted evidence of the derived kinds
        rows = await server.svc.evidence.list(case_id)
        kinds = {r.kind for r in rows}
        assert {"rectified", "analysis", "hologram"} <= kinds
        assert kinds <= {"front", "recording", *ANALYSIS_KINDS}
        for row in rows:
            if row.kind in ANALYSIS_KINDS:
                raw = (server.svc.evidence.root / row.path).read_bytes()
                assert b"MUSTERMANN" not in raw and not raw.startswith(b"\x89PNG")

        # every step is in the case log; no personal data in any log
        events = await server.svc.store.events(case_id)
        actions = [e["action"] for e in events]
        assert actions.count("torch_step") == started["steps"]
        assert "analysis" in actions
        assert actions.count("torch_challenge") == 2  # start and result
        for text in (caplog.text, json.dumps([e["detail"] for e in events])):
            assert "MUSTERMANN" not in text and "L01X00T47" not in text
    finally:
        await phone.close()
        await agent.close()


async def test_analysis_torch_challenge_flat_copy_not_genuine(server: Server) -> None:
    phone, agent, _, _ = await _call(server, attack="flat")
    try:
        mark = agent.log.mark()
        await agent.send({"type": "torch_challenge"})
        await agent.log.expect("hologram_started", since=mark)

        # while the pattern runs, the torch belongs to it alone
        busy = await agent.request({"type": "torch", "on": True}, "error")
        assert busy["error"] == {
            "code": "challenge_running",
            "message": "the torch challenge is switching the torch",
        }
        again = await agent.request({"type": "torch_challenge"}, "error")
        assert again["error"]["message"] == "a torch challenge is already running"

        holo = await agent.log.expect("hologram", timeout=60)
        assert holo["verdict"] == "suspect", holo
        assert holo["score"] < 0.5
    finally:
        await phone.close()
        await agent.close()


async def test_analysis_torch_challenge_without_torch_asks_to_tilt(
    server: Server,
) -> None:
    phone, agent, _, _ = await _call(server, has_torch=False)
    try:
        mark = agent.log.mark()
        await agent.send({"type": "torch_challenge"})
        holo = await agent.log.expect("hologram", timeout=30, since=mark)
        assert holo["verdict"] == "inconclusive"
        assert holo["variant"] == "tilt"
        assert holo["reason"].startswith("the phone reported no controllable torch")
        strip = await _fetch_image(agent, holo["overlay_url"])
        assert strip.shape == (2 * 202, 3 * 320, 3)
        instruction = await phone.log.expect("instruction", timeout=5)
        assert instruction["key"] in ("hold_still", "tilt_card")
        if instruction["key"] == "hold_still":
            instruction = await phone.log.expect("instruction", timeout=5)
        assert instruction["key"] == "tilt_card"
    finally:
        await phone.close()
        await agent.close()


def test_document_still_is_the_best_of_the_last_moments() -> None:
    scene = render.SceneRenderer(
        render.draw_document("id1", seed=0), width=1280, height=720, seed=3, motion=0
    )
    sharp, _ = scene.frame(0.0, False)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    frames = {
        name: av.VideoFrame.from_ndarray(image, format="bgr24")
        for name, image in (("sharp", sharp), ("blurred", blurred))
    }
    scores = {
        name: live_quality(frame, None, 1)[0].score for name, frame in frames.items()
    }
    assert scores["sharp"] > scores["blurred"]  # the quality measure sees the blur

    fresh = Candidate(10.0, frames["blurred"], scores["blurred"])
    recent = [Candidate(9.2, frames["sharp"], scores["sharp"])]
    # the user moved just as the agent pressed the key: the sharp moment is kept
    chosen, compared = pick_still(fresh, recent, now=10.0, within=1.5)
    assert chosen.frame is frames["sharp"] and compared == 2
    # an older sharp frame is no longer the moment of the capture
    chosen, compared = pick_still(fresh, recent, now=11.0, within=1.5)
    assert chosen is fresh and compared == 1
    # a fresh frame at least as good wins
    fresh = Candidate(10.0, frames["sharp"], scores["sharp"])
    recent = [Candidate(9.5, frames["blurred"], scores["blurred"])]
    assert pick_still(fresh, recent, now=10.0, within=1.5)[0] is fresh
