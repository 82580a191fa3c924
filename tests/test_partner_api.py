from typing import Any

from tests.conftest import Server

GOOD = {
    "reference": "r-1",
    "identity": {
        "given_names": "ERIKA",
        "surname": "MUSTERMANN",
        "birth_date": "1983-08-12",
    },
    "email": "erika@example.org",
}


async def _post(
    server: Server, body: Any, key: str | None = None, raw: bytes | None = None
):
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        resp = await server.http.post(
            f"{server.base}/api/v1/cases", data=raw, headers=headers
        )
    else:
        resp = await server.http.post(
            f"{server.base}/api/v1/cases", json=body, headers=headers
        )
    async with resp:
        return resp.status, await resp.json()


async def test_create_case_returns_activation_url_and_mails_it(server: Server) -> None:
    status, body = await _post(server, GOOD)
    assert status == 201
    assert body["state"] == "created"
    assert body["activation_url"].startswith(f"{server.base}/a/")
    await server.mailbox.wait_for(1)
    assert body["activation_url"] in server.mailbox.body(0)
    assert server.mailbox.messages[0]["To"] == "erika@example.org"


async def test_create_case_error_shape_is_locked(server: Server) -> None:
    status, body = await _post(server, None, raw=b"{broken")
    assert status == 400
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "malformed_json"
    assert body["error"]["message"].startswith("body is not valid JSON: ")


async def test_create_case_wrong_key_is_unauthorized(server: Server) -> None:
    status, body = await _post(server, GOOD, key="idk_wrong")
    assert status == 401
    assert body == {
        "error": {"code": "unauthorized", "message": "the API key is not valid"}
    }


async def test_create_case_validation_quotes_the_bad_value(server: Server) -> None:
    bad = {**GOOD, "identity": {**GOOD["identity"], "birth_date": "12.08.1983"}}
    status, body = await _post(server, bad)
    assert status == 400
    assert body["error"]["message"] == (
        "identity.birth_date '12.08.1983' is not a date YYYY-MM-DD"
    )
    status, body = await _post(server, {**GOOD, "callback_url": "ftp://x"})
    assert body["error"]["message"] == "callback_url 'ftp://x' must be an http(s) URL"
    status, body = await _post(server, {**GOOD, "email": "nope"})
    assert body["error"]["message"] == "field 'email' is not an e-mail address"
    status, body = await _post(server, [1, 2])
    assert body["error"]["message"] == "body must be a JSON object, got list"


async def test_get_case_of_another_partner_is_not_found(server: Server) -> None:
    _, created = await _post(server, GOOD)
    _, other_key = await server.svc.accounts.add_partner("other")
    async with server.http.get(
        f"{server.base}/api/v1/cases/{created['id']}",
        headers={"Authorization": f"Bearer {other_key}"},
    ) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "case_not_found"


async def test_consent_requires_every_box(server: Server) -> None:
    _, created = await _post(server, GOOD)
    token = created["activation_url"].rsplit("/", 1)[-1]
    async with server.http.post(
        f"{server.base}/api/v1/activation/{token}/consent",
        json={"terms": True, "processing": True},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"] == (
            "consent needs recording set to true"
        )
    case = await server.svc.store.get(created["id"])
    assert case.state.value == "created"


async def test_unknown_activation_link_is_not_found(server: Server) -> None:
    async with server.http.get(f"{server.base}/api/v1/activation/nothing") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "link_unknown"


async def test_create_case_callback_must_be_https_to_a_public_host(
    server: Server,
) -> None:
    server.svc.settings.allow_insecure_callbacks = False
    cases = {
        "http://partner.example.org/cb": "must use https",
        "https://127.0.0.1/cb": "host '127.0.0.1' is not a public address",
        "https://10.1.2.3/cb": "host '10.1.2.3' is not a public address",
        "https://localhost:9/cb": "host 'localhost' is not a public host",
    }
    for url, message in cases.items():
        status, body = await _post(server, {**GOOD, "callback_url": url})
        assert status == 400
        assert body["error"]["message"].endswith(message), body
    status, _ = await _post(
        server, {**GOOD, "callback_url": "https://partner.example/cb"}
    )
    assert status == 201


async def test_create_case_refuses_implausible_birth_dates(server: Server) -> None:
    for birth in ("2999-01-01", "1850-05-05"):
        bad = {**GOOD, "identity": {**GOOD["identity"], "birth_date": birth}}
        status, body = await _post(server, bad)
        assert status == 400
        assert body["error"]["message"] == (
            f"identity.birth_date '{birth}' is not a plausible birth date"
        )


async def test_activation_link_fetch_alone_changes_nothing(server: Server) -> None:
    _, created = await _post(server, GOOD)
    async with server.http.get(created["activation_url"]) as resp:
        assert resp.status == 200
    assert (await server.svc.store.get(created["id"])).state.value == "created"
    token = created["activation_url"].rsplit("/", 1)[-1]
    async with server.http.get(f"{server.base}/api/v1/activation/{token}") as resp:
        assert (await resp.json())["state"] == "activated"


async def test_terms_page_is_served(server: Server) -> None:
    async with server.http.get(f"{server.base}/terms") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert "Datenschutzhinweise" in text
    assert "widerrufen" in text
