"""Consent given again: a new transaction number, rate-limited, the old one void."""

from __future__ import annotations

from typing import Any

from identdesk.clients import create_case
from tests.conftest import PinnedClock, Server

BOXES = {"terms": True, "processing": True, "recording": True}


async def _consent(server: Server, token: str) -> tuple[int, dict[str, Any]]:
    async with server.http.post(
        f"{server.base}/api/v1/activation/{token}/consent", json=BOXES
    ) as resp:
        return resp.status, await resp.json()


async def _check(server: Server, tan: str) -> int:
    async with server.http.post(
        f"{server.base}/api/v1/tan/check", json={"tan": tan}
    ) as resp:
        return resp.status


async def test_consent_again_sends_a_new_number_at_most_every_ten_minutes(
    server: Server, clock: PinnedClock
) -> None:
    case = await create_case(server.http, server.base, server.api_key)
    token = case["activation_url"].rsplit("/", 1)[-1]
    status, first = await _consent(server, token)
    assert status == 200
    await server.mailbox.wait_for(2)  # activation, transaction number

    for _ in range(20):
        status, body = await _consent(server, token)
        assert status == 429
        assert body["error"]["code"] == "tan_sent_recently"
    assert body["error"]["message"] == (
        "a transaction number was sent less than 10 minutes ago; a new one can be "
        "sent in 10 minutes"
    )
    clock.advance(minutes=9, seconds=30)
    status, body = await _consent(server, token)
    assert body["error"]["message"].endswith("sent in 1 minute")

    clock.advance(seconds=30)
    status, second = await _consent(server, token)
    assert status == 200
    assert second["tan"] != first["tan"]
    await server.mailbox.wait_for(3)
    assert second["tan"] in server.mailbox.body(2)
    assert await _check(server, second["tan"]) == 200
    assert await _check(server, first["tan"]) == 404  # void
    stored = await server.svc.store.get(case["id"])
    assert stored.state.value == "consented"
    assert len(server.mailbox.messages) == 3  # no mail for the 21 refused


async def test_consent_again_ends_after_five_numbers(
    server: Server, clock: PinnedClock
) -> None:
    case = await create_case(server.http, server.base, server.api_key)
    token = case["activation_url"].rsplit("/", 1)[-1]
    for _ in range(5):
        status, _ = await _consent(server, token)
        assert status == 200
        clock.advance(minutes=10)
    status, body = await _consent(server, token)
    assert status == 409
    assert body["error"] == {
        "code": "tan_resend_exhausted",
        "message": "a transaction number was sent 5 times for this identification; "
        "the organisation that asked for it can start a new one",
    }
    await server.mailbox.wait_for(6)
    assert len(server.mailbox.messages) == 6
    stored = await server.svc.store.get(case["id"])
    assert stored.state.value == "consented"


async def test_tan_failures_metric_counts_only_well_formed_wrong_numbers(
    server: Server,
) -> None:
    assert await _check(server, "AAAAA-AAAAA") == 404  # well-formed, no case
    assert await _check(server, "abc") == 400  # malformed: a typing mistake
    async with server.http.get(f"{server.base}/metrics") as resp:
        text = await resp.text()
    assert (
        "# HELP identdesk_tan_failures_total well-formed transaction numbers that "
        "matched no case (join or check); malformed entries are typing mistakes "
        "and not counted"
    ) in text
    assert "identdesk_tan_failures_total 1.0" in text
