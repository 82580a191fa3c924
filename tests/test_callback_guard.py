"""Callbacks go to public hosts only: at case creation and again when sent.

A real server on 127.0.0.1 with SQLite; names resolve through a resolver the test
gives the delivery (no traffic to any other host), and the destinations that must
not be reached are plain TCP listeners on loopback that count connections.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from signaling import db
from signaling.results import CallbackRefused, PublicResolver, host_refusal
from tests.conftest import Server
from tests.test_partner_api import GOOD, _post


class LocalNames(AbstractResolver):
    """A resolver with a fixed table, as a DNS server under an attacker's control
    would answer."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


class Listener:
    """A TCP port on loopback that only counts who connects."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: Any, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _delivered_row(server: Server, case_id: str, attempts: int = 1) -> Any:
    """The case's delivery row once it has `attempts` attempts (10 s deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        async with server.svc.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.deliveries).where(db.deliveries.c.case_id == case_id)
                )
            ).first()
        if row is not None and row.attempts >= attempts:
            return row
        if loop.time() > deadline:
            raise AssertionError(f"no delivery attempt for case {case_id}: {row}")
        await asyncio.sleep(0.02)


async def _case_with_callback(server: Server, url: str) -> str:
    status, body = await _post(server, {**GOOD, "callback_url": url})
    assert status == 201, body
    return str(body["id"])


REFUSED_AT_CREATION = {
    "https://localhost./x": "host 'localhost.' is not a public host",
    "https://LOCALHOST/x": "host 'localhost' is not a public host",
    "https://api.localhost/x": "host 'api.localhost' is not a public host",
    "https://\u24dbocalhost/x": "host 'localhost' is not a public host",
    "https://intranet/x": "host 'intranet' is not a public host",
    "https://2130706433/x": "host '2130706433' is not a public address (127.0.0.1)",
    "https://0x7f000001/x": "host '0x7f000001' is not a public address (127.0.0.1)",
    "https://0177.0.0.1/x": "host '0177.0.0.1' is not a public address (127.0.0.1)",
    "https://127.1/x": "host '127.1' is not a public address (127.0.0.1)",
    "https://127.0.0.1./x": "host '127.0.0.1.' is not a public address (127.0.0.1)",
    "https://08.0.0.1/x": "host '08.0.0.1' is not a valid address",
    "https://0.0.0.0/x": "host '0.0.0.0' is not a public address",
    "https://169.254.169.254/x": "host '169.254.169.254' is not a public address",
    "https://100.64.0.1/x": "host '100.64.0.1' is not a public address",
    "https://224.0.0.1/x": "host '224.0.0.1' is not a public address",
    "https://240.0.0.1/x": "host '240.0.0.1' is not a public address",
    "https://[::1]/x": "host '::1' is not a public address",
    "https://[::]/x": "host '::' is not a public address",
    "https://[fe80::1]/x": "host 'fe80::1' is not a public address",
    "https://[fd00::1]/x": "host 'fd00::1' is not a public address",
    "https://[ff02::1]/x": "host 'ff02::1' is not a public address",
    "https://[::ffff:127.0.0.1]/x": "host '::ffff:7f00:1' is not a public address",
    "https://[::ffff:10.0.0.1]/x": "host '::ffff:a00:1' is not a public address",
    "https://[::127.0.0.1]/x": "host '::7f00:1' is not a public address",
    "https://[2002:7f00:1::]/x": "host '2002:7f00:1::' is not a public address",
    "https://[64:ff9b::a00:1]/x": "host '64:ff9b::a00:1' is not a public address",
}


async def test_create_case_refuses_local_hosts_in_every_form(server: Server) -> None:
    server.svc.settings.allow_insecure_callbacks = False
    for url, message in REFUSED_AT_CREATION.items():
        status, body = await _post(server, {**GOOD, "callback_url": url})
        assert (status, body["error"]["message"]) == (
            400,
            f"callback_url {message}",
        ), url
    # public names and addresses pass (nothing is sent before a decision)
    for url in ("https://partner.example/cb", "https://93.184.216.34/cb"):
        await _case_with_callback(server, url)


def test_host_refusal_public_hosts_pass() -> None:
    for host in ("partner.example", "93.184.216.34", "2606:4700::1111", "a.b.c."):
        assert host_refusal(host) is None, host


async def test_public_resolver_refuses_any_address_that_is_not_public() -> None:
    table = {
        "public.example": ["93.184.216.34", "2606:4700::1111"],
        "mixed.example": ["93.184.216.34", "10.0.0.7"],
    }
    resolver = PublicResolver(LocalNames(table), lambda: False)
    found = await resolver.resolve("public.example", 443)
    assert [r["host"] for r in found] == table["public.example"]
    with pytest.raises(CallbackRefused) as info:
        await resolver.resolve("mixed.example", 443)
    assert str(info.value) == (
        "callback host 'mixed.example' resolves to 10.0.0.7, "
        "which is not a public address"
    )
    # the system's own resolver: 'localhost' resolves on this machine alone
    system = PublicResolver(None, lambda: False)
    try:
        with pytest.raises(CallbackRefused, match="resolves to "):
            await system.resolve("localhost", 443)
    finally:
        await system.close()
    # the explicit allowance (tests, local demos) lets it through
    allowed = PublicResolver(LocalNames(table), lambda: True)
    assert len(await allowed.resolve("mixed.example", 443)) == 2


async def test_delivery_refuses_a_name_that_resolves_to_loopback(
    server: Server, clock: Any
) -> None:
    listener = Listener()
    port = await listener.start()
    server.svc.settings.allow_insecure_callbacks = False
    assert server.svc.delivery.resolver is not None
    server.svc.delivery.resolver.inner = LocalNames({"partner.example": ["127.0.0.1"]})
    try:
        case_id = await _case_with_callback(
            server, f"https://partner.example:{port}/cb"
        )
        await server.svc.delivery.enqueue(case_id)
        row = await _delivered_row(server, case_id)
        assert row.last_status == (
            "refused: callback host 'partner.example' resolves to 127.0.0.1, "
            "which is not a public address"
        )
        assert (row.delivered_at, row.next_at) == (None, None)
        # no retries: an hour later the refused delivery is still not tried
        clock.advance(hours=1)
        await server.svc.delivery.deliver_due()
        assert (await _delivered_row(server, case_id)).attempts == 1
        assert listener.connections == 0
    finally:
        await listener.stop()


async def test_delivery_refuses_an_address_allowed_before(server: Server) -> None:
    listener = Listener()
    port = await listener.start()
    try:
        # accepted while the allowance was on, sent after it was switched off
        case_id = await _case_with_callback(server, f"https://127.0.0.1:{port}/cb")
        server.svc.settings.allow_insecure_callbacks = False
        await server.svc.delivery.enqueue(case_id)
        row = await _delivered_row(server, case_id)
        assert row.last_status == (
            "refused: callback_url host '127.0.0.1' is not a public address"
        )
        assert row.next_at is None
        assert listener.connections == 0
    finally:
        await listener.stop()


async def test_delivery_does_not_follow_redirects(server: Server) -> None:
    target = Listener()
    target_port = await target.start()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{target_port}/internal")

    app = web.Application()
    app.router.add_post("/cb", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        case_id = await _case_with_callback(server, f"http://127.0.0.1:{port}/cb")
        await server.svc.delivery.enqueue(case_id)
        row = await _delivered_row(server, case_id)
        assert row.last_status == "HTTP 302: redirects are not followed"
        assert row.delivered_at is None and row.next_at is not None  # retried later
        assert target.connections == 0
    finally:
        await runner.cleanup()
        await target.stop()
