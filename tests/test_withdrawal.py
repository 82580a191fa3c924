"""Consent withdrawn by the partner: data deleted at once, or blocked on legal hold."""

from __future__ import annotations

import aiohttp

from identdesk.clients import (
    AgentClient,
    PhoneClient,
    activate_and_consent,
    create_case,
    mail_code_source,
)
from identdesk.qa import local_server
from tests.conftest import Server, waiting_phone


async def _decided_case(server: Server) -> tuple[str, AgentClient, str]:
    phone, case_id, _ = await waiting_phone(server)
    phone.code_source = mail_code_source(lambda: server.mailbox.messages)
    agent = AgentClient(server.http, server.base)
    await agent.login(server.agent_name, server.agent_password)
    await agent.take_case()
    await agent.connect_media()
    await agent.wait_frames(3)
    snap = await agent.capture("front")
    await agent.capture("back")
    await agent.capture("face")
    await agent.confirm_call_tan()
    await agent.decide("approve", "ok")
    await phone.close()
    return case_id, agent, snap["url"]


async def _withdraw(server: Server, case_id: str, body: dict) -> tuple[int, dict]:
    async with server.http.post(
        f"{server.base}/api/v1/cases/{case_id}/withdrawal",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    ) as resp:
        return resp.status, await resp.json()


async def test_withdrawal_whole_deletes_evidence_and_identity(server: Server) -> None:
    case_id, agent, url = await _decided_case(server)
    try:
        files = list((server.svc.settings.data_dir / "evidence" / case_id).iterdir())
        assert len(files) >= 2  # the still, the recording, what was derived
        status, body = await _withdraw(server, case_id, {})
        assert status == 200
        assert body["state"] == "withdrawn"
        assert body["evidence"] == []
        assert body["withdrawal"]["deleted_items"] == len(files)
        assert (
            list((server.svc.settings.data_dir / "evidence" / case_id).iterdir()) == []
        )
        assert await server.svc.store.identity(case_id) == {}
        status, _ = await agent.fetch(url)
        assert status == 404
    finally:
        await agent.close()


async def test_withdrawal_on_legal_hold_blocks_instead_of_deleting(
    server: Server,
) -> None:
    case_id, agent, url = await _decided_case(server)
    try:
        status, body = await _withdraw(server, case_id, {"legal_hold": True})
        assert status == 200
        assert body["state"] == "withdrawn"
        assert {"front", "recording"} <= {e["kind"] for e in body["evidence"]}
        status, data = await agent.fetch(url)
        assert status == 410
        assert b"blocked" in data
    finally:
        await agent.close()


async def test_withdrawal_in_part_keeps_the_rest(server: Server) -> None:
    case_id, agent, _ = await _decided_case(server)
    try:
        status, body = await _withdraw(server, case_id, {"parts": ["recording"]})
        assert status == 200
        assert body["state"] in ("decided", "delivered")
        kinds = {e["kind"] for e in body["evidence"]}
        assert "front" in kinds and "recording" not in kinds
        status, body = await _withdraw(server, case_id, {"parts": ["fingerprints"]})
        assert status == 400
        assert body["error"]["message"] == (
            "parts ['fingerprints'] must be a non-empty list of "
            "identity, snapshots, recording"
        )
    finally:
        await agent.close()


async def test_withdrawal_while_waiting_tells_the_phone(server: Server) -> None:
    case = await create_case(server.http, server.base, server.api_key)
    consent = await activate_and_consent(server.http, case["activation_url"])
    phone = PhoneClient(server.http, server.base)
    try:
        await phone.join(consent["tan"])
        await phone.log.expect("queued")
        status, body = await _withdraw(server, case["id"], {})
        assert status == 200
        ended = await phone.log.expect("ended")
        assert ended["decision"] == "withdrawn"
        assert server.svc.hub.queue == {}
        assert body["state"] == "withdrawn"
    finally:
        await phone.close()


async def test_withdrawal_during_the_call_tells_the_agent(server: Server) -> None:
    phone, case_id, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        await agent.take_case()
        await agent.connect_media()
        await agent.wait_frames(2)
        await _withdraw(server, case_id, {})
        notice = await agent.log.expect("case_withdrawn")
        assert notice["case_id"] == case_id
        assert (await phone.log.expect("ended"))["decision"] == "withdrawn"
        assert case_id not in server.svc.hub.calls
        # the agent's desk is free again at once
        reply = await agent.request({"type": "take_next"}, "queue_empty")
        assert reply["type"] == "queue_empty"
    finally:
        await phone.close()
        await agent.close()


async def test_withdrawal_deletes_the_case_mails_in_the_outbox(tmp_path) -> None:
    async with local_server(tmp_path / "data") as (base, svc):
        _, key = await svc.accounts.add_partner("outbox-partner")
        async with aiohttp.ClientSession() as http:
            cases = []
            for _ in range(2):
                case = await create_case(http, base, key)
                await activate_and_consent(http, case["activation_url"])
                cases.append(case["id"])
            outbox = svc.settings.data_dir / "outbox"
            # the activation mail and the transaction number, per case
            assert len(list(outbox.glob(f"{cases[0]}-*.eml"))) == 2
            async with http.post(
                f"{base}/api/v1/cases/{cases[0]}/withdrawal",
                json={},
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                assert resp.status == 200
    assert list(outbox.glob(f"{cases[0]}-*.eml")) == []
    assert len(list(outbox.glob(f"{cases[1]}-*.eml"))) == 2  # others' stay
