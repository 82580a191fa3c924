"""Calls carried by media worker processes: spread, isolated, replaced when they die."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from identdesk.clients import (
    AgentClient,
)
from media.admission import default_max_calls
from media.ipc import ProtocolError, pack, read_message
from signaling.config import parse_media_workers
from tests.conftest import Server, waiting_phone

OFFER_SHAPE = (
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
)


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def _worker_of(server: Server, case_id: str) -> Any:
    for worker in server.svc.hub.pool.workers:
        if any(case_id in media.label for media in worker.calls.values()):
            return worker
    raise AssertionError(f"no worker carries case {case_id}")


@pytest.mark.parametrize("server", [2], indirect=True)
async def test_calls_spread_over_workers_and_a_dead_worker_is_replaced(
    server: Server,
) -> None:
    pool = server.svc.hub.pool
    assert pool is not None
    _, second_password = await server.svc.accounts.add_agent("agent-two")
    phone_a, case_a, _ = await waiting_phone(server)
    phone_b, case_b, _ = await waiting_phone(server)
    agent_a = AgentClient(server.http, server.base)
    # the second agent has a session of their own
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as own:
        agent_b = AgentClient(own, server.base)
        try:
            await agent_a.login(server.agent_name, server.agent_password)
            await agent_b.login("agent-two", second_password)
            assert (await agent_a.take_case())["id"] == case_a
            await agent_a.connect_media()
            assert (await agent_b.take_case())["id"] == case_b
            await agent_b.connect_media()
            await agent_a.wait_frames(10)
            await agent_b.wait_frames(10)

            # one call per worker, neither in the server process
            first, second = _worker_of(server, case_a), _worker_of(server, case_b)
            assert first is not second
            assert os.getpid() not in (first.pid, second.pid)
            assert sorted(w["calls"] for w in pool.describe()) == [1, 1]

            # kill the first call's worker (after two seconds of recording): that
            # call is lost, the other goes on
            await agent_a.wait_frames(60)
            old_pid, index = first.pid, first.index
            mark = agent_a.log.mark()
            os.kill(old_pid, signal.SIGKILL)
            lost = await agent_a.log.expect("call_lost", since=mark, timeout=15)
            assert lost["case_id"] == case_a
            await phone_a.log.expect("connection_lost", timeout=15)
            assert (await server.svc.store.get(case_a)).state.value == "waiting"
            before = agent_b.frames
            await agent_b.wait_frames(before + 30)
            assert (await server.svc.store.get(case_b)).state.value == "in_call"

            # a new worker takes the dead one's place
            await until(
                lambda: (
                    pool.workers[index].alive and pool.workers[index].pid != old_pid
                ),
                60,
                "worker replaced",
            )

            # the lost call's recording was kept up to the loss, and closed
            rows = [
                r
                for r in await server.svc.evidence.list(case_a)
                if r.kind == "recording"
            ]
            assert len(rows) == 1 and rows[0].completed_at is not None
            kept = b"".join(server.svc.evidence.iter_plain(rows[0]))
            assert kept.startswith(b"\x1a\x45\xdf\xa3")  # EBML: Matroska
            assert len(kept) > 1000

            # the phone waits again; the agent takes it on the next free worker
            agent_a.frames = 0
            assert (await agent_a.take_case())["id"] == case_a
            await agent_a.connect_media()
            await agent_a.wait_frames(10)
            assert sorted(w["calls"] for w in pool.describe()) == [1, 1]
        finally:
            for client in (phone_a, phone_b, agent_a, agent_b):
                await client.close()


@pytest.mark.parametrize(
    "server", [0, 2], indirect=True, ids=["in-process", "media-workers"]
)
async def test_unusable_offer_is_refused_and_the_call_goes_on(server: Server) -> None:
    phone, _, _ = await waiting_phone(server)
    agent = AgentClient(server.http, server.base)
    try:
        await agent.login(server.agent_name, server.agent_password)
        await agent.take_case()
        # well-formed enough for the message check, but nothing to connect to
        refused = await agent.request({"type": "offer", "sdp": OFFER_SHAPE}, "error")
        assert refused["error"]["code"] == "bad_sdp"
        assert refused["error"]["message"].startswith("the offer could not be applied")
        await agent.connect_media()
        await agent.wait_frames(10)
    finally:
        await phone.close()
        await agent.close()


async def _feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_ipc_messages_round_trip_and_garbage_is_refused() -> None:
    reader = await _feed(pack({"op": "x", "n": 1}, b"\x00\x01") + pack({"ev": "y"}))
    assert await read_message(reader) == ({"op": "x", "n": 1}, b"\x00\x01")
    assert await read_message(reader) == ({"ev": "y"}, b"")
    assert await read_message(reader) is None  # a clean end

    cases = {
        "cut off": pack({"op": "x"}, b"12345")[:-2],
        "too large": struct.pack(">II", 1 << 30, 0),
        "not an object": struct.pack(">II", 2, 0) + b"[]",
    }
    for what, data in cases.items():
        with pytest.raises(ProtocolError):
            await read_message(await _feed(data))
        assert what


def test_capacity_counts_worker_processes() -> None:
    # one process saturates near 0.8 core; two workers on two cores carry more
    assert default_max_calls(cpu_count=2, processes=1) == 8
    assert default_max_calls(cpu_count=2, processes=2) == 14
    assert default_max_calls(cpu_count=1, processes=4) == 7
    assert parse_media_workers("auto") == (os.cpu_count() or 1)
    assert parse_media_workers(" 0 ") == 0
    with pytest.raises(ValueError, match="give a number"):
        parse_media_workers("many")
    with pytest.raises(ValueError, match="give a number"):
        parse_media_workers("-1")


async def test_workers_get_no_secrets_and_end_with_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from media.admission import Admission
    from media.workers import WorkerPool

    monkeypatch.setenv("IDENTDESK_SMTP_URL", "smtp://user:secret@127.0.0.1:1")
    monkeypatch.setenv("IDENTDESK_MASTER_KEY", "not-a-real-key")
    pool = WorkerPool(1, "WARNING", Admission(4))
    await pool.start()
    try:
        pid = pool.workers[0].pid
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith(b"IDENTDESK_")]
        assert any(v.startswith(b"PATH=") for v in environ)
    finally:
        await pool.close()
    assert not pool.workers[0].alive
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped
