"""The in-call TAN: e-mailed in the call, entered on the phone; approval needs it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiortc import AudioStreamTrack

from identdesk.clients import (
    CALL_TAN_SUBJECTS,
    AgentClient,
    PhoneClient,
    ProtocolError,
    latest_call_tan,
)
from identdesk.qa import default_script, run_local
from signaling.cases import APPROVAL_CHECKS
from signaling.errors import ApiError
from signaling.mail import compose
from signaling.messages import CallTanEntry, parse_phone
from tests.conftest import Server, waiting_phone
from tests.media_fixtures import SceneTrack
from tests.test_cli_qa import write_video

APPROVE = {
    "type": "decide",
    "decision": "approve",
    "reason": "ok",
    "checks": list(APPROVAL_CHECKS),
}


async def _in_call(server: Server) -> tuple[PhoneClient, AgentClient, str, str]:
    """A phone in a call with a logged-in agent whose video arrives."""
    phone, case_id, tan = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    await agent.login(server.agent_name, server.agent_password)
    await agent.take_case()
    await agent.connect_media()
    await agent.wait_frames(3)
    return phone, agent, case_id, tan


async def _send(server: Server, agent: AgentClient, phone: PhoneClient) -> str:
    """Send a code; returns it as read from the user's mail."""
    mark = phone.log.mark()
    sent = await agent.request({"type": "send_call_tan"}, "call_tan")
    assert sent["state"] == "sent"
    assert sent["attempts_left"] == 3
    await phone.log.expect("call_tan_requested", since=mark)
    return await latest_call_tan(lambda: server.mailbox.messages)


async def _enter(phone: PhoneClient, code: Any) -> dict[str, Any]:
    mark = phone.log.mark()
    await phone.send({"type": "call_tan", "tan": code})
    return await phone.log.expect("call_tan_result", "error", since=mark)


def _other(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def _events(server: Server, case_id: str) -> list[str]:
    return [
        e["detail"]
        for e in await server.svc.store.events(case_id)
        if e["action"] == "call_tan"
    ]


async def test_call_tan_sent_wrong_malformed_then_confirmed(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    phone, agent, case_id, _ = await _in_call(server)
    try:
        code = await _send(server, agent, phone)
        mail = server.mailbox.messages[-1]
        assert mail["To"] == "erika.mustermann@example.org"
        assert "Bitte geben Sie ihn jetzt auf Ihrem Smartphone ein" in (
            server.mailbox.body(len(server.mailbox.messages) - 1)
        )

        # a typing mistake gets an error and does not count
        for bad in ("12345", "12a456", "1234567", ""):
            refused = await _enter(phone, bad)
            assert refused["error"]["code"] == "call_tan_malformed"
        refused = await _enter(phone, 123456)
        assert refused["error"] == {
            "code": "bad_message",
            "message": "field 'tan' of 'call_tan' must be str, got 123456",
        }
        assert agent.call_tan is not None and agent.call_tan["state"] == "sent"

        # a wrong code counts; the agent sees how many are left
        wrong = await _enter(phone, _other(code))
        assert wrong == {
            "type": "call_tan_result",
            "ok": False,
            "attempts_left": 2,
            "locked": False,
        }
        told = await agent.log.expect("call_tan")
        assert (told["state"], told["wrong"], told["attempts_left"]) == ("wrong", 1, 2)

        # the right one, typed with a space, confirms it on both sides
        done = await _enter(phone, f"{code[:3]} {code[3:]}")
        assert done == {"type": "call_tan_result", "ok": True}
        confirmed = await agent.log.expect("call_tan")
        assert confirmed == {"type": "call_tan", "state": "confirmed"}
        assert await _events(server, case_id) == [
            "call TAN sent",
            "call TAN wrong (1 of 3)",
            "call TAN confirmed",
        ]
        await agent.capture("front")
        await agent.capture("back")
        await agent.capture("face")
        decided = await agent.request(APPROVE, "decided", timeout=30)
        assert decided["decision"] == "approve"
    finally:
        await phone.close()
        await agent.close()

    # the code is in no log line and nowhere on disk (the mail went by SMTP);
    # only the test's SMTP server, the user's mail provider, logs what it receives
    ours = [r.getMessage() for r in caplog.records if r.name != "mail.log"]
    assert not [line for line in ours if code in line]
    assert f"case {case_id} - call TAN confirmed" in ours
    data_dir = server.svc.settings.data_dir
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert code.encode() not in path.read_bytes(), path


async def test_call_tan_locked_after_three_wrong_and_replaced(server: Server) -> None:
    phone, agent, _, _ = await _in_call(server)
    try:
        code = await _send(server, agent, phone)
        for left in (2, 1):
            assert (await _enter(phone, _other(code)))["attempts_left"] == left
        last = await _enter(phone, _other(code))
        assert (last["ok"], last["attempts_left"], last["locked"]) == (False, 0, True)
        await agent.log.expect("call_tan")
        await agent.log.expect("call_tan")
        locked = await agent.log.expect("call_tan")
        assert locked["state"] == "locked"

        # the void code is refused even when right
        refused = await _enter(phone, code)
        assert refused["error"] == {
            "code": "call_tan_locked",
            "message": "the code is void after 3 wrong entries; "
            "the agent sends a new one",
        }
        refused = await agent.request(APPROVE, "error")
        assert refused["error"]["code"] in ("evidence_missing", "call_tan_missing")

        # a new code replaces the old one, with fresh attempts
        fresh = await _send(server, agent, phone)
        if fresh != code:
            assert (await _enter(phone, code))["attempts_left"] == 2
        assert (await _enter(phone, fresh))["ok"] is True
    finally:
        await phone.close()
        await agent.close()


async def test_call_tan_needed_to_approve(server: Server) -> None:
    phone, agent, _, _ = await _in_call(server)
    try:
        for kind in ("front", "back", "face"):
            await agent.capture(kind)
        refused = await agent.request(APPROVE, "error")
        assert refused["error"] == {
            "code": "call_tan_missing",
            "message": "approve needs the one-time code sent during this call "
            "confirmed by the user; send it (send_call_tan) and wait for the phone",
        }
        # sent is not enough: the user must enter it
        await _send(server, agent, phone)
        refused = await agent.request(APPROVE, "error")
        assert refused["error"]["code"] == "call_tan_missing"
        # a rejection needs no code
        done = await agent.request(
            {"type": "decide", "decision": "reject", "reason": "document_invalid"},
            "decided",
            timeout=30,
        )
        assert done["decision"] == "reject"
    finally:
        await phone.close()
        await agent.close()


async def test_call_tan_survives_reconnect_not_requeue(server: Server) -> None:
    phone, agent, case_id, tan = await _in_call(server)
    second = PhoneClient(
        server.http,
        server.base,
        tracks=lambda: [SceneTrack(320, 240), AudioStreamTrack()],
    )
    try:
        code = await _send(server, agent, phone)

        # the phone reconnects within the call: it is asked again, the code holds
        await second.join(tan)
        await second.log.expect("call")
        await second.log.expect("call_tan_requested")
        assert (await _enter(second, code))["ok"] is True
        await agent.log.expect("call_tan")
        assert agent.call_tan == {"type": "call_tan", "state": "confirmed"}

        # the agent hangs up: the case is requeued and the next call has no code
        await agent.request({"type": "hangup"}, "hung_up")
        await second.log.expect("agent_left")
        await agent.take_case()
        refused = await _enter(second, code)
        assert refused["error"]["code"] == "call_tan_none"
        for kind in ("front", "back", "face"):
            await agent.capture(kind)
        refused = await agent.request(APPROVE, "error")
        assert refused["error"]["code"] == "call_tan_missing"
    finally:
        for client in (phone, second):
            await client.close()
        await agent.close()


async def test_call_tan_expires_after_ten_minutes(server: Server, clock: Any) -> None:
    phone, agent, _, _ = await _in_call(server)
    try:
        code = await _send(server, agent, phone)
        clock.advance(minutes=10, seconds=1)
        refused = await _enter(phone, code)
        assert refused["error"] == {
            "code": "call_tan_expired",
            "message": "the code has expired; the agent sends a new one",
        }
        expired = await agent.log.expect("call_tan")
        assert expired == {"type": "call_tan", "state": "expired"}
        fresh = await _send(server, agent, phone)
        assert (await _enter(phone, fresh))["ok"] is True
    finally:
        await phone.close()
        await agent.close()


async def test_call_tan_refused_without_call_or_phone(server: Server) -> None:
    phone, case_id, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        refused = await agent.request({"type": "send_call_tan"}, "error")
        assert refused["error"] == {"code": "no_call", "message": "take a case first"}
        # the phone waiting in the queue has no code to enter
        refused = await _enter(phone, "123456")
        assert refused["error"]["code"] == "no_call"

        await agent.take_case()
        await phone.close()
        await agent.log.expect("phone_left")
        refused = await agent.request({"type": "send_call_tan"}, "error")
        assert refused["error"] == {
            "code": "phone_absent",
            "message": "the phone is not connected; the code is sent while it is "
            "in the call",
        }
        assert not [
            m for m in server.mailbox.messages if m["Subject"] in CALL_TAN_SUBJECTS
        ]
    finally:
        await agent.close()


def test_call_tan_entry_parsed_digits_only() -> None:
    assert parse_phone('{"type": "call_tan", "tan": " 042 917 "}') == CallTanEntry(
        "042917"
    )
    with pytest.raises(ApiError) as caught:
        parse_phone('{"type": "call_tan", "tan": "04291x"}')
    assert caught.value.body() == {
        "error": {
            "code": "call_tan_malformed",
            "message": "the code from the e-mail is 6 digits, got 6 characters "
            "with other signs than digits",
        }
    }
    with pytest.raises(ApiError, match="got 3 characters$"):
        parse_phone('{"type": "call_tan", "tan": "123"}')


def test_call_tan_mail_in_the_case_language() -> None:
    german = compose("a@b", "c@d", "call_tan", "de", tan="042917", minutes="10")
    english = compose("a@b", "c@d", "call_tan", "en", tan="042917", minutes="10")
    assert german["Subject"] == "Ihr Code für die Video-Identifizierung"
    assert english["Subject"] == "Your code for the video identification"
    assert "042917" in english.get_content()
    assert "10 minutes" in english.get_content()


async def test_latest_call_tan_waits_with_deadline() -> None:
    with pytest.raises(ProtocolError, match="no new call TAN mail within 0.2 s"):
        await latest_call_tan(lambda: [], timeout=0.2)


async def test_qa_session_reads_call_tan_from_outbox(tmp_path: Path) -> None:
    """`qa run`'s default script approves: its phone reads the code from the outbox."""
    video = write_video(tmp_path / "phone.webm", 3.0, 320, 240, False)
    report = await run_local(str(video), default_script(3.0), tmp_path / "data")
    assert report.call_tan["state"] == "confirmed"
    assert report.decision["decision"] == "approve"
    assert "call TAN          confirmed at" in report.text()


async def test_call_tan_before_the_call_says_there_is_no_call(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    try:
        for code in ("123", "123456"):
            refused = await _enter(phone, code)
            assert refused["error"] == {
                "code": "no_call",
                "message": "the code is entered during the call",
            }
    finally:
        await phone.close()


async def test_oversized_socket_message_is_logged_once_without_content(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    phone = PhoneClient(server.http, server.base)
    await phone.open("/ws/phone")
    agent = AgentClient(server.http, server.base)
    await agent.login(server.agent_name, server.agent_password)
    secret = "MUSTERMANN" * 210_000  # 2.1 MB
    for side in (phone, agent):
        await side.send_raw(secret)
        assert side._reader is not None and side.ws is not None
        await asyncio.wait_for(asyncio.shield(side._reader), 10)
        assert side.ws.close_code == 1009
    refused = [r for r in caplog.records if "over the limit" in r.getMessage()]
    assert [r.levelname for r in refused] == ["WARNING", "WARNING"]
    assert (
        refused[0]
        .getMessage()
        .endswith("x message over the limit of 131072 bytes; socket closed (1009)")
    )
    assert refused[1].getMessage().startswith("agent agent-one x message over")
    assert "MUSTERMANN" not in caplog.text
    await phone.close()
    await agent.close()
