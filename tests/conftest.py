"""Shared fixtures: a real server on loopback, a real SMTP server, a pinned clock."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from identdesk.qa import local_server

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


class PinnedClock:
    """A clock tests set and advance; starts on a Wednesday at 10:00 in Berlin."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    arrived: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"only {len(self.messages)} of {count} mails arrived"
                )
            await asyncio.sleep(0.02)
        return self.messages

    def body(self, index: int) -> str:
        part = self.messages[index]
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, str]]:
    """A real SMTP server (aiosmtpd) on loopback; yields the mailbox and its URL."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@pytest.fixture
def clock() -> PinnedClock:
    return PinnedClock()


@dataclass
class Server:
    base: str
    svc: Any
    mailbox: Mailbox
    api_key: str
    agent_name: str
    agent_password: str
    http: aiohttp.ClientSession


@pytest.fixture
async def server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    smtp: tuple[Mailbox, str],
    clock: PinnedClock,
) -> AsyncIterator[Server]:
    """identdesk on 127.0.0.1 with SQLite in tmp_path, SMTP mail, office hours.

    Calls run in the server process; parametrize indirectly with a number to
    have that many media worker processes carry them."""
    from signaling.config import ServiceHours

    box, url = smtp
    async with local_server(
        tmp_path / "data",
        smtp_url=url,
        clock=clock,
        service_hours=ServiceHours(),
        media_workers=getattr(request, "param", 0),
    ) as (base, svc):
        _, key = await svc.accounts.add_partner("test-partner")
        _, password = await svc.accounts.add_agent("agent-one", "correct horse battery")
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            yield Server(base, svc, box, key, "agent-one", password, http)


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


async def waiting_phone(server: Server) -> tuple[Any, str, str]:
    """A consented case whose phone (a 320x240 scene and a tone) waits in the queue;
    returns the phone client, the case id and the transaction number."""
    from aiortc import AudioStreamTrack

    from identdesk.clients import PhoneClient, activate_and_consent, create_case
    from tests.media_fixtures import SceneTrack

    case = await create_case(server.http, server.base, server.api_key)
    consent = await activate_and_consent(server.http, case["activation_url"])
    phone = PhoneClient(
        server.http,
        server.base,
        tracks=lambda: [SceneTrack(320, 240), AudioStreamTrack()],
    )
    await phone.join(consent["tan"])
    await phone.log.expect("queued")
    return phone, case["id"], consent["tan"]
