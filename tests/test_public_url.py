"""Links in mails come from the configured public URL, never the Host header."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.certs import ensure_certificates, lan_addresses
from signaling.config import InvalidSettingError, Settings, parse_public_url
from signaling.services import public_base_url
from tests.conftest import Server
from tests.test_partner_api import GOOD

EVIL = {"Host": "evil.example"}


async def _create(server: Server, headers: dict[str, str]) -> dict:
    async with server.http.post(
        f"{server.base}/api/v1/cases",
        json=GOOD,
        headers={"Authorization": f"Bearer {server.api_key}", **headers},
    ) as resp:
        assert resp.status == 201
        return await resp.json()


async def _consent(server: Server, token: str, headers: dict[str, str]) -> dict:
    async with server.http.post(
        f"{server.base}/api/v1/activation/{token}/consent",
        json={"terms": True, "processing": True, "recording": True},
        headers=headers,
    ) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_links_ignore_a_forged_host_header(server: Server) -> None:
    case = await _create(server, EVIL)
    assert case["activation_url"].startswith(f"{server.base}/a/")
    await server.mailbox.wait_for(1)
    assert case["activation_url"] in server.mailbox.body(0)
    assert "evil.example" not in server.mailbox.body(0)

    token = case["activation_url"].rsplit("/", 1)[-1]
    answer = await _consent(server, token, EVIL)
    assert answer["phone_url"] == f"{server.base}/phone/"
    await server.mailbox.wait_for(2)
    assert f"{server.base}/phone/" in server.mailbox.body(1)
    assert "evil.example" not in server.mailbox.body(1)


async def test_links_use_the_configured_public_url(server: Server) -> None:
    server.svc.settings.public_url = "https://ident.example.org/video"
    case = await _create(server, EVIL)
    assert case["activation_url"].startswith("https://ident.example.org/video/a/")
    await server.mailbox.wait_for(1)
    assert case["activation_url"] in server.mailbox.body(0)


def test_public_base_url_defaults_to_the_servers_own_address(tmp_path: Path) -> None:
    assert (
        public_base_url(Settings(host="127.0.0.1", port=8443))
        == "https://127.0.0.1:8443"
    )
    assert public_base_url(Settings(host="::1", port=443)) == "https://[::1]"
    assert public_base_url(Settings(host="127.0.0.1", port=80, tls=False)) == (
        "http://127.0.0.1"
    )
    # on every interface: the address `serve` prints for phones
    wildcard = Settings(host="0.0.0.0", port=8443)
    assert public_base_url(wildcard) == f"https://{lan_addresses()[-1]}:8443"
    # an operator's certificate: its first DNS name (the generated one's is localhost)
    _, cert, key = ensure_certificates(tmp_path)
    operator = Settings(host="0.0.0.0", port=8443, tls_cert=cert, tls_key=key)
    assert public_base_url(operator) == "https://localhost:8443"


def test_serve_banner_names_the_link_base() -> None:
    from identdesk.cli_serve import banner

    lines = banner(Settings(host="127.0.0.1", port=9443), None)
    assert "Links in e-mails: https://127.0.0.1:9443/ (IDENTDESK_PUBLIC_URL)" in lines


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("evil.example", "IDENTDESK_PUBLIC_URL='evil.example': give https://"),
        ("ftp://x.example", "IDENTDESK_PUBLIC_URL='ftp://x.example': give https://"),
        ("https://x.example/?a=1", "IDENTDESK_PUBLIC_URL='https://x.example/?a=1': no"),
        ("https://x.example:99999", "IDENTDESK_PUBLIC_URL='https://x.example:99999'"),
    ],
)
def test_public_url_setting_is_checked(text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        parse_public_url(text)
    assert str(caught.value).startswith(message)


def test_public_url_setting_loses_its_final_slash() -> None:
    assert parse_public_url(" https://x.example/ident/ ") == "https://x.example/ident"
    assert parse_public_url("") == ""
