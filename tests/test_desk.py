"""The agent's decision: an approval the latest MRZ reading speaks against.

A real server on loopback with SQLite, a phone and an agent in a call. The MRZ
readings are the real parser's results on the specimen's MRZ, stored as the
snapshot analysis stores them (encrypted evidence of kind "analysis").
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from identdesk.clients import AgentClient, PhoneClient
from media.mrz import parse_mrz
from media.mrz_reader import MrzReading
from media.specimen import specimen_mrz
from tests.conftest import Server
from tests.test_call_tan import APPROVE, _enter, _in_call, _send

REASONS = "mrz_misread, validity_extended"


async def _ready_to_approve(server: Server) -> tuple[PhoneClient, AgentClient, str]:
    """A call with front, back and face captured and the in-call code confirmed."""
    phone, agent, case_id, _ = await _in_call(server)
    for kind in ("front", "back", "face"):
        await agent.capture(kind)
    code = await _send(server, agent, phone)
    assert (await _enter(phone, code))["ok"] is True
    return phone, agent, case_id


async def _store_reading(
    server: Server, case_id: str, lines: list[str], today: date
) -> None:
    """An analysis of a document snapshot whose MRZ reads as `lines` on `today`."""
    reading = MrzReading(True, lines, result=parse_mrz(lines, today=today))
    body = {"snapshot": "s", "kind": "back", "mrz": reading.to_dict()}
    await server.svc.evidence.add(
        case_id, "analysis", "application/json", json.dumps(body).encode()
    )


async def _decided(agent: AgentClient, message: dict[str, Any]) -> dict[str, Any]:
    return await agent.request(message, "decided", timeout=30)


async def test_approve_of_an_expired_document_needs_a_recorded_override(
    server: Server,
) -> None:
    phone, agent, case_id = await _ready_to_approve(server)
    try:
        # the specimen expires on 2034-10-31
        await _store_reading(server, case_id, specimen_mrz("id1"), date(2035, 1, 1))
        refused = await agent.request(APPROVE, "error", timeout=30)
        assert refused["error"] == {
            "code": "document_expired",
            "message": "approve refused: the latest document analysis reads an "
            "expired document; only a valid ID card or passport is accepted. "
            f"Reject (document_expired), or approve with an override reason "
            f"({REASONS}) and a note if the reading is wrong or the validity "
            "was extended",
        }
        # the call goes on, and with it the analysis of new snapshots
        mark = agent.log.mark()
        await agent.capture("face")
        await agent.log.expect("analysis", timeout=40, since=mark)

        bad = [
            ({**APPROVE, "override": "because"}, f"override 'because' must be one "
             f"of {REASONS}"),
            ({**APPROVE, "override": "validity_extended"},
             "an override needs a note that explains it"),
            ({"type": "decide", "decision": "reject", "reason": "document_expired",
              "override": "mrz_misread", "note": "x"},
             "only an approval takes an override"),
        ]  # fmt: skip
        for message, text in bad:
            refused = await agent.request(message, "error")
            assert refused["error"] == {"code": "bad_message", "message": text}

        done = await _decided(
            agent,
            {
                **APPROVE,
                "override": "validity_extended",
                "note": "validity extended by an official sticker on the back",
            },
        )
        assert done["decision"] == "approve"
        events = await server.svc.store.events(case_id)
        overrides = [e for e in events if e["action"] == "override"]
        assert [e["detail"] for e in overrides] == [
            "approve despite document_expired: validity_extended "
            "(explained in the sealed note)"
        ]
        assert overrides[0]["actor"].startswith("agent:")
        # the override comes before the decision in the case log
        actions = [e["action"] for e in events]
        assert actions.index("override") < actions.index("checklist")
        assert (await server.svc.store.get(case_id)).decision == "approve"
    finally:
        await phone.close()
        await agent.close()


async def test_approve_of_a_type_not_accepted_is_refused_until_a_valid_reading(
    server: Server, clock: Any
) -> None:
    phone, agent, case_id = await _ready_to_approve(server)
    try:
        visa = specimen_mrz("td3")
        visa[0] = "V" + visa[0][1:]
        await _store_reading(server, case_id, visa, date(2026, 12, 2))
        refused = await agent.request(APPROVE, "error", timeout=30)
        assert refused["error"]["code"] == "document_not_accepted"
        assert refused["error"]["message"].startswith(
            "approve refused: the latest document analysis reads a document type "
            "that is not accepted; only ID cards and passports are."
        )
        # a later snapshot of the passport reads valid: that reading counts
        clock.advance(seconds=5)
        await _store_reading(server, case_id, specimen_mrz("td3"), date(2026, 12, 2))
        done = await _decided(agent, APPROVE)
        assert done["decision"] == "approve"
        events = await server.svc.store.events(case_id)
        assert "override" not in [e["action"] for e in events]
    finally:
        await phone.close()
        await agent.close()
