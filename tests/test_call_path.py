"""The whole path on loopback: partner, mails, phone, agent, result."""

from __future__ import annotations

import io
import json
import re

import av
import cv2
import jwt
import numpy as np
import pytest
from aiortc import AudioStreamTrack

from identdesk.clients import (
    AgentClient,
    PhoneClient,
    ProtocolError,
    activate_and_consent,
    create_case,
    mail_code_source,
)
from identdesk.qa import CallbackSink
from media.remux import remux
from signaling.cases import APPROVAL_CHECKS
from signaling.results import verify_detached
from tests.conftest import Server, psnr
from tests.media_fixtures import SceneTrack

OFFER_SHAPE = (
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
)


async def _consented_case(
    server: Server, callback_url: str | None = None
) -> tuple[dict, dict]:
    case = await create_case(
        server.http, server.base, server.api_key, callback_url=callback_url
    )
    consent = await activate_and_consent(server.http, case["activation_url"])
    return case, consent


@pytest.mark.parametrize(
    "server", [0, 2], indirect=True, ids=["in-process", "media-workers"]
)
async def test_call_path_end_to_end(server: Server, tmp_path) -> None:
    sink = CallbackSink()
    await sink.start()
    scene = SceneTrack()
    phone = PhoneClient(
        server.http,
        server.base,
        tracks=lambda: [scene, AudioStreamTrack()],
        code_source=mail_code_source(lambda: server.mailbox.messages),
    )
    agent = AgentClient(server.http, server.base)
    try:
        case, consent = await _consented_case(server, sink.url)

        # both mails went through the real SMTP server
        mails = await server.mailbox.wait_for(2)
        assert mails[0]["Subject"] == "Ihre Video-Identifizierung"
        assert case["activation_url"] in server.mailbox.body(0)
        assert consent["tan"] in server.mailbox.body(1)
        assert re.fullmatch(r"[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}", consent["tan"])

        joined = await phone.join(consent["tan"].lower())  # case-insensitive
        assert joined["case_id"] == case["id"]
        queued = await phone.log.expect("queued")
        assert queued["position"] == 1

        await agent.login(server.agent_name, server.agent_password)
        taken = await agent.take_case()
        assert taken["identity"]["surname"] == "MUSTERMANN"
        await agent.connect_media()
        await agent.wait_frames(10, timeout=20)

        # a snapshot is a full-resolution still that matches what the phone sent
        snap = await agent.capture("front")
        assert (snap["width"], snap["height"]) == (640, 480)
        status, png = await agent.fetch(snap["url"])
        assert status == 200
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        best = max(psnr(image, sent) for sent in list(scene.sent))
        assert best >= 30.0, f"snapshot PSNR {best:.1f} dB"

        # the torch round trip reaches the phone and comes back with its state
        ack = await agent.torch(True)
        assert ack == {
            "type": "torch_state",
            "on": True,
            "available": True,
            "detail": "",
        }
        assert phone.torch_log == [True]

        # an approval needs the document's both sides and the face
        refused = await agent.request(
            {"type": "decide", "decision": "approve", "reason": "ok"}, "error"
        )
        assert refused["error"] == {
            "code": "evidence_missing",
            "message": "approve needs snapshots of front, back and face; "
            "missing: back, face",
        }
        await agent.capture("back")
        await agent.capture("face")
        # ... and every checklist item confirmed by the agent
        refused = await agent.request(
            {
                "type": "decide",
                "decision": "approve",
                "reason": "ok",
                "checks": ["photo", "mrz"],
            },
            "error",
        )
        assert refused["error"] == {
            "code": "checklist_incomplete",
            "message": "approve needs every checklist item confirmed; "
            "open: ovd, expiry, number, data, tan",
        }
        refused = await agent.request(
            {"type": "decide", "decision": "approve", "reason": "ok", "checks": [1]},
            "error",
        )
        assert refused["error"]["message"].startswith("unknown checklist items [1]")
        # ... and the one-time code e-mailed during the call, entered on the phone
        refused = await agent.request(
            {
                "type": "decide",
                "decision": "approve",
                "reason": "ok",
                "checks": list(APPROVAL_CHECKS),
            },
            "error",
        )
        assert refused["error"]["code"] == "call_tan_missing"
        await agent.confirm_call_tan()
        assert (await phone.log.expect("call_tan_result"))["ok"] is True
        done = await agent.decide("approve", "ok", "specimen card, all checks fine")
        assert done["decision"] == "approve"
        ended = await phone.log.expect("ended")
        assert ended["decision"] == "approve"

        # the callback arrives signed; the partner verifies it with the JWKS
        await _wait(sink)
        body, signature = sink.received[0]
        async with server.http.get(f"{server.base}/.well-known/jwks.json") as resp:
            jwks = await resp.json()
        key = jwt.PyJWK(jwks["keys"][0]).key
        result = json.loads(verify_detached(signature, body, key))
        assert result["id"] == case["id"]
        assert result["decision"] == "approve"
        assert {"front", "recording"} <= {e["kind"] for e in result["evidence"]}

        # the partner reads the same result; the state moved on to delivered
        async with server.http.get(
            f"{server.base}/api/v1/cases/{case['id']}",
            headers={"Authorization": f"Bearer {server.api_key}"},
        ) as resp:
            assert resp.status == 200
            polled = await resp.json()
        assert polled["decision"] == "approve"
        assert polled["state"] in ("decided", "delivered")
    finally:
        await phone.close()
        await agent.close()
        await sink.stop()

    # the recording decrypts to a playable Matroska file
    rows = [
        r for r in await server.svc.evidence.list(case["id"]) if r.kind == "recording"
    ]
    assert len(rows) == 1
    plain = tmp_path / "call.mkv"
    plain.write_bytes(b"".join(server.svc.evidence.iter_plain(rows[0])))
    with av.open(str(plain)) as container:
        kinds = {s.type for s in container.streams}
        frames = sum(1 for _ in container.decode(video=0))
    assert {"video", "audio"} <= kinds
    assert frames >= 10

    # exported, it is a standard file with a duration and the same frames
    exported = tmp_path / "export.mkv"
    figures = remux(io.BytesIO(plain.read_bytes()), exported)
    with av.open(str(exported)) as container:
        assert container.duration is not None
        seconds = container.duration / 1_000_000
    assert figures["video"] == frames
    assert 0.3 < seconds < 60
    assert abs(seconds - figures["seconds"]) < 0.5

    # nothing personal is on disk in plaintext
    for path in (server.svc.settings.data_dir).rglob("*"):
        if path.is_file() and path.suffix != ".eml":
            data = path.read_bytes()
            assert b"MUSTERMANN" not in data, path
            assert consent["tan"].encode() not in data, path


async def _wait(sink: CallbackSink) -> None:
    import asyncio

    await asyncio.wait_for(sink.arrived.wait(), timeout=15)


async def test_phone_join_wrong_tan_is_refused_and_rate_limited(server: Server) -> None:
    phone = PhoneClient(server.http, server.base)
    limit = server.svc.settings.tan_attempts
    try:
        await phone.open("/ws/phone")
        # typing mistakes are not guesses: they never count towards the limit
        for _ in range(limit + 2):
            await phone.send({"type": "join", "tan": "12"})
            msg = await phone.log.expect("error")
            assert msg["error"]["code"] == "tan_malformed"
        for _ in range(limit):
            await phone.send({"type": "join", "tan": "AAAAA-BBBBB"})
            msg = await phone.log.expect("error")
            assert msg["error"]["code"] == "tan_unknown"
        await phone.send({"type": "join", "tan": "AAAAA-BBBBB"})
        msg = await phone.log.expect("error")
        assert msg["error"]["code"] == "too_many_attempts"
        assert msg["error"]["retry_after"] > 0
        assert msg["error"]["message"] == (
            "too many wrong transaction numbers; try again in about 10 minutes"
        )
    finally:
        await phone.close()


async def test_phone_join_malformed_tan_explains_format(server: Server) -> None:
    phone = PhoneClient(server.http, server.base)
    try:
        await phone.open("/ws/phone")
        await phone.send({"type": "join", "tan": "xyz"})
        msg = await phone.log.expect("error")
        assert msg["error"] == {
            "code": "tan_malformed",
            "message": (
                "a transaction number has 10 letters and digits, e.g. K7M2Q-4XTRB"
            ),
        }
    finally:
        await phone.close()


async def test_malformed_messages_get_errors_and_break_nothing(server: Server) -> None:
    _, consent = await _consented_case(server)
    phone = PhoneClient(server.http, server.base)
    try:
        await phone.open("/ws/phone")
        await phone.send_raw("{not json")
        msg = await phone.log.expect("error")
        assert msg["error"]["code"] == "malformed_json"
        await phone.send({"type": "offer", "sdp": "x"})
        msg = await phone.log.expect("error")
        assert msg["error"]["message"] == "SDP must start with 'v=0', got 'x'"
        await phone.send({"type": "offer", "sdp": OFFER_SHAPE})
        msg = await phone.log.expect("error")
        assert msg["error"]["code"] == "not_joined"
        await phone.send({"type": "warp"})
        msg = await phone.log.expect("error")
        assert msg["error"] == {
            "code": "unknown_type",
            "message": "unknown message type 'warp' from the phone",
        }
        await phone.send({"type": "join", "tan": 42})
        msg = await phone.log.expect("error")
        assert msg["error"]["message"] == "field 'tan' of 'join' must be str, got 42"
        # the same connection still joins normally afterwards
        await phone.send({"type": "join", "tan": consent["tan"]})
        joined = await phone.log.expect("joined")
        assert joined["type"] == "joined"
        await phone.send({"type": "offer", "sdp": "v=0\r\nm=video 9 x\r\n"})
        msg = await phone.log.expect("error")
        assert msg["error"]["message"] == (
            "the offer must have one audio and one video section, got ['video']"
        )
        # an offer while no agent has the case yet
        await phone.send({"type": "offer", "sdp": OFFER_SHAPE})
        msg = await phone.log.expect("error")
        assert msg["error"]["code"] == "no_call"
        # the case is still waiting in the queue
        case = await server.svc.store.get(joined["case_id"])
        assert case.state.value == "waiting"
    finally:
        await phone.close()


async def test_agent_socket_requires_login(server: Server) -> None:
    agent = AgentClient(server.http, server.base)
    try:
        await agent.open("/ws/agent")
        raise AssertionError("the socket opened without a login")
    except Exception as exc:  # aiohttp raises WSServerHandshakeError
        assert "401" in str(exc)
    finally:
        await agent.close()


async def test_agent_wrong_password_is_refused(server: Server) -> None:
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, "not the password")
        raise AssertionError("login succeeded with a wrong password")
    except ProtocolError as exc:
        assert str(exc) == "login failed: name or password is wrong"


async def test_snapshot_of_another_agents_case_is_not_found(server: Server) -> None:
    scene = SceneTrack(320, 240)
    phone = PhoneClient(
        server.http, server.base, tracks=lambda: [scene, AudioStreamTrack()]
    )
    agent = AgentClient(server.http, server.base)
    import aiohttp

    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as other_http:
        _, password = await server.svc.accounts.add_agent(
            "agent-two", "another long password"
        )
        other = AgentClient(other_http, server.base)
        try:
            _, consent = await _consented_case(server)
            await phone.join(consent["tan"])
            await agent.login(server.agent_name, server.agent_password)
            await agent.take_case()
            await agent.connect_media()
            await agent.wait_frames(3, timeout=20)
            snap = await agent.capture("face")
            await other.login("agent-two", password)
            status, body = await other.fetch(snap["url"])
            assert status == 404
            assert json.loads(body)["error"]["code"] == "evidence_not_found"
        finally:
            await phone.close()
            await agent.close()
            await other.close()


async def test_deeply_nested_json_gets_an_error_not_a_crash(server: Server) -> None:
    deep = "[" * 5000 + "]" * 5000
    async with server.http.post(
        f"{server.base}/api/v1/cases",
        data=deep,
        headers={
            "Authorization": f"Bearer {server.api_key}",
            "Content-Type": "application/json",
        },
    ) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["error"] == {
        "code": "malformed_json",
        "message": "body is nested too deeply",
    }
    phone = PhoneClient(server.http, server.base)
    try:
        await phone.open("/ws/phone")
        await phone.send_raw(deep)
        msg = await phone.log.expect("error")
        assert msg["error"]["message"] == "message is nested too deeply"
        await phone.send({"type": "ping"})  # the connection goes on
        assert (await phone.log.expect("pong"))["type"] == "pong"
    finally:
        await phone.close()
