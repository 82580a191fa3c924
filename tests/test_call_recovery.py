"""Calls survive a phone reload; an agent who hangs up puts the case back."""

from __future__ import annotations

import asyncio
import io

import av
from aiortc import AudioStreamTrack

from identdesk.clients import (
    AgentClient,
    PhoneClient,
)
from tests.conftest import Server, waiting_phone
from tests.media_fixtures import SceneTrack


async def test_agent_media_reaches_the_phone(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        await agent.take_case()
        await agent.connect_media([SceneTrack(320, 240), AudioStreamTrack()])
        await agent.wait_frames(5)
        await phone.wait_received("video", 5)
        await phone.wait_received("audio", 50)
        case_id = agent.case["id"] if agent.case else ""
        await agent.request({"type": "hangup"}, "hung_up")
    finally:
        await phone.close()
        await agent.close()

    # the recording holds both voices: the phone's and the agent's
    rows = [r for r in await server.svc.evidence.list(case_id) if r.kind == "recording"]
    data = b"".join(server.svc.evidence.iter_plain(rows[0]))
    with av.open(io.BytesIO(data)) as container:
        titles = [s.metadata.get("title") for s in container.streams.audio]
        counts = {s.index: 0 for s in container.streams}
        for packet in container.demux():
            if packet.dts is not None:
                counts[packet.stream.index] += 1
        agent_index = next(
            s.index
            for s in container.streams.audio
            if s.metadata.get("title") == "agent"
        )
    assert titles == ["phone", "agent"]
    assert counts[agent_index] > 20


async def test_phone_reload_rejoins_the_running_call(server: Server) -> None:
    phone, _, tan = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    second = PhoneClient(
        server.http,
        server.base,
        tracks=lambda: [SceneTrack(320, 240), AudioStreamTrack()],
    )
    try:
        await agent.login(server.agent_name, server.agent_password)
        case = await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(3)

        # the page reloads: the old socket goes, a new one joins with the same number
        await phone.close()
        await agent.log.expect("phone_left")
        before = agent.frames
        joined = await second.join(tan)
        assert joined["case_id"] == case["id"]
        await second.log.expect("call")
        await agent.log.expect("phone_rejoined")
        await agent.wait_frames(before + 5)
        assert (await server.svc.store.get(case["id"])).state.value == "in_call"
        snap = await agent.capture("front")
        assert snap["width"] == 320
    finally:
        await second.close()
        await agent.close()


async def test_agent_hangup_puts_the_case_back_in_the_queue(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        case = await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(2)
        await agent.request({"type": "hangup"}, "hung_up")
        await phone.log.expect("agent_left")
        queued = await phone.log.expect("queued")
        assert queued["position"] == 1
        assert (await server.svc.store.get(case["id"])).state.value == "waiting"
        # the next agent gets the same case, and the call works again
        again = await agent.take_case()
        assert again["id"] == case["id"]
        await agent.connect_media()
        await agent.wait_frames(agent.frames + 3)
    finally:
        await phone.close()
        await agent.close()


async def test_agent_disconnect_mid_call_requeues_and_loses_nothing(
    server: Server,
) -> None:
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        case = await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(2)
        await agent.capture("front")
        await agent.close()  # the agent's browser vanishes
        await phone.log.expect("agent_left")
        assert (await server.svc.store.get(case["id"])).state.value == "waiting"
        kinds = {r.kind for r in await server.svc.evidence.list(case["id"])}
        assert {"front", "recording"} <= kinds
        events = [e["action"] for e in await server.svc.store.events(case["id"])]
        assert "capture" in events and "hangup" in events
    finally:
        await phone.close()


async def test_metrics_count_calls_and_queue(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    try:
        async with server.http.get(f"{server.base}/metrics") as resp:
            text = await resp.text()
        assert "identdesk_queue_waiting 1.0" in text
        assert "identdesk_cases_created_total 1.0" in text
        assert "identdesk_calls_active 0.0" in text
    finally:
        await phone.close()


async def test_take_next_when_the_gateway_is_full_keeps_the_case_waiting(
    server: Server, monkeypatch
) -> None:
    from media.admission import admission

    monkeypatch.setattr(admission, "max_calls", 0)
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        reply = await agent.request({"type": "take_next"}, "error")
        assert reply["error"] == {
            "code": "gateway_full",
            "message": "the media gateway is at its limit of 0 concurrent calls;"
            " try again in a few minutes",
        }
        case_id = next(iter(server.svc.hub.queue))
        assert (await server.svc.store.get(case_id)).state.value == "waiting"
    finally:
        await phone.close()
        await agent.close()


async def test_capture_after_the_phone_video_stopped_is_refused(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(3)
        # the phone's camera freezes: its video track ends, the socket stays
        assert phone.pc is not None
        for sender in phone.pc.getSenders():
            if sender.track is not None and sender.track.kind == "video":
                sender.track.stop()
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            reply = await _capture_or_error(agent)
            if reply["type"] == "error" or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert reply["type"] == "error"
        assert reply["error"]["code"] == "stale_picture"
        assert reply["error"]["message"].endswith(
            "its video has stopped, so nothing was captured"
        )
    finally:
        await phone.close()
        await agent.close()


async def _capture_or_error(agent: AgentClient) -> dict:
    mark = agent.log.mark()
    await agent.send({"type": "capture", "kind": "front"})
    return await agent.log.expect("snapshot", "error", since=mark, timeout=10)
