from identdesk.clients import PhoneClient, activate_and_consent, create_case
from tests.conftest import Server


async def test_phone_join_outside_hours_says_when_it_opens(
    server: Server, clock
) -> None:
    case = await create_case(server.http, server.base, server.api_key)
    consent = await activate_and_consent(server.http, case["activation_url"])
    clock.advance(hours=13)  # 23:00 in Berlin
    phone = PhoneClient(server.http, server.base)
    try:
        await phone.open("/ws/phone")
        await phone.send({"type": "join", "tan": consent["tan"]})
        msg = await phone.log.expect("error")
        assert msg["error"]["code"] == "service_closed"
        assert msg["error"]["message"] == (
            "the video identification is open 06:00-22:00 Europe/Berlin; "
            "it opens again at 03.12.2026 06:00"
        )
        assert msg["error"]["opens_at"] == "2026-12-03T06:00:00+01:00"
    finally:
        await phone.close()
    assert (await server.svc.store.get(case["id"])).state.value == "consented"
    async with server.http.get(f"{server.base}/api/v1/service") as resp:
        status = await resp.json()
    assert status["open"] is False
