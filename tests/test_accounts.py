import asyncio
import logging
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest

from agent_console.auth import SPRAY_CEILING
from signaling.accounts import MAX_FAILED_LOGINS
from signaling.errors import ApiError
from signaling.ratelimit import FailureLimiter
from tests.conftest import Server

FAILED = {"error": {"code": "login_failed", "message": "name or password is wrong"}}


async def test_login_locks_after_repeated_failures(
    server: Server, clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    accounts = server.svc.accounts
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(ApiError, match="name or password is wrong"):
            await accounts.login(server.agent_name, "wrong password!")
    # locked: the right password is refused with the answer of a wrong one
    with pytest.raises(ApiError) as info:
        await accounts.login(server.agent_name, server.agent_password)
    assert (info.value.status, info.value.body()) == (401, FAILED)
    assert "x agent agent-one locked until 2026-12-02T09:15" in caplog.text
    assert "x login refused for agent agent-one: locked until" in caplog.text
    assert "wrong password!" not in caplog.text
    assert server.agent_password not in caplog.text
    clock.advance(minutes=16)
    agent = await accounts.login(server.agent_name, server.agent_password)
    assert agent.name == server.agent_name


async def _login(server: Server, name: str, password: str) -> tuple[int, Any]:
    async with server.http.post(
        f"{server.base}/agent/api/login", json={"name": name, "password": password}
    ) as resp:
        return resp.status, await resp.json()


async def test_login_unknown_wrong_and_locked_answer_alike(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    unknown = await _login(server, "no-such-agent", "some password")
    wrong = await _login(server, server.agent_name, "wrong password!")
    for _ in range(MAX_FAILED_LOGINS - 1):
        await _login(server, server.agent_name, "wrong password!")
    locked = await _login(server, server.agent_name, server.agent_password)
    assert unknown == wrong == locked == (401, FAILED)
    # the unknown name is logged as a pseudonym only, no password at all
    assert "x failed login for unknown name name-" in caplog.text
    assert "no-such-agent" not in caplog.text and "some password" not in caplog.text


async def test_login_unknown_and_locked_take_as_long_as_wrong(server: Server) -> None:
    accounts = server.svc.accounts
    await accounts.add_agent("agent-locked", "correct horse battery")
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(ApiError):
            await accounts.login("agent-locked", "wrong password!")

    async def seconds(name: str, password: str) -> float:
        started = time.perf_counter()
        with pytest.raises(ApiError):
            await accounts.login(name, password)
        return time.perf_counter() - started

    timings: dict[str, list[float]] = {"unknown": [], "wrong": [], "locked": []}
    for _ in range(3):
        timings["unknown"].append(await seconds("no-such-agent", "some password"))
        timings["wrong"].append(await seconds(server.agent_name, "wrong password!"))
        timings["locked"].append(await seconds("agent-locked", "correct horse battery"))
        await accounts.login(server.agent_name, server.agent_password)  # no lock
    medians = {k: statistics.median(v) for k, v in timings.items()}
    # each one Argon2id hash (about 0.25 s here); a path without one takes ~1 ms
    assert medians["unknown"] > 0.5 * medians["wrong"], medians
    assert medians["locked"] > 0.5 * medians["wrong"], medians


async def test_login_guesses_at_one_name_do_not_block_other_agents(
    server: Server,
) -> None:
    await server.svc.accounts.add_agent("agent-two", "second horse battery")
    limit = server.svc.login_limiter.limit
    for _ in range(limit):
        assert await _login(server, server.agent_name, "wrong password!") == (
            401,
            FAILED,
        )
    status, body = await _login(server, server.agent_name, "wrong password!")
    assert status == 429
    assert body["error"]["message"].startswith("too many failed logins; try again in")
    # an unknown name is held back alike: 429 says nothing about the name
    for _ in range(limit):
        await _login(server, "no-such-agent", "some password")
    assert (await _login(server, "no-such-agent", "some password"))[0] == 429
    # another agent at the same address logs in
    status, body = await _login(server, "agent-two", "second horse battery")
    assert status == 200 and body["agent"]["name"] == "agent-two"


async def test_login_address_ceiling_spares_agents_known_there(server: Server) -> None:
    await server.svc.accounts.add_agent("agent-two", "second horse battery")
    assert (await _login(server, "agent-two", "second horse battery"))[0] == 200
    # one failure per name holds a name back; ten names the whole address
    server.svc.login_limiter.limit = 1
    for index in range(SPRAY_CEILING):
        assert (await _login(server, f"sprayed-{index}", "some password"))[0] == 401
    assert (await _login(server, "sprayed-new", "some password"))[0] == 429
    # an agent not seen at this address waits; one who logged in from it does not
    assert (await _login(server, server.agent_name, server.agent_password))[0] == 429
    assert (await _login(server, "agent-two", "second horse battery"))[0] == 200


def test_failure_limiter_known_keys_expire() -> None:
    now = [0.0]
    limiter = FailureLimiter(2, 60, clock=lambda: now[0])
    limiter.fail("a")
    limiter.fail("a")
    assert limiter.retry_after("a") == 60
    assert limiter.retry_after("a", limit=3) == 0
    limiter.succeed("a", known_for=100)
    assert limiter.retry_after("a") == 0 and limiter.known("a")
    now[0] = 100.0
    assert not limiter.known("a")


async def test_agent_unlock_command(server: Server) -> None:
    accounts = server.svc.accounts
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(ApiError):
            await accounts.login(server.agent_name, "wrong password!")
    assert (await _login(server, server.agent_name, server.agent_password))[0] == 401
    data_dir = str(server.svc.settings.data_dir)
    done = await _cli("agent", "unlock", server.agent_name, "--data-dir", data_dir)
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "agent agent-one unlocked; its failed logins are forgotten",
    )
    status, body = await _login(server, server.agent_name, server.agent_password)
    assert status == 200 and body["agent"]["name"] == server.agent_name
    unknown = await _cli("agent", "unlock", "nobody", "--data-dir", data_dir)
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "error: no agent named 'nobody'",
    )


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "identdesk.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_password_is_stored_as_argon2id(server: Server) -> None:
    import sqlalchemy as sa

    from signaling import db

    async with server.svc.engine.connect() as conn:
        stored = (
            (await conn.execute(sa.select(db.agents.c.password_hash))).scalars().all()
        )
    assert all(h.startswith("$argon2id$") for h in stored)


async def test_add_agent_refuses_duplicates_and_short_passwords(server: Server) -> None:
    with pytest.raises(ApiError, match="an agent named 'agent-one' exists"):
        await server.svc.accounts.add_agent("agent-one")
    with pytest.raises(ApiError, match="at least 10 characters"):
        await server.svc.accounts.add_agent("agent-x", "short")


async def test_agent_api_needs_csrf_header(server: Server) -> None:
    async with server.http.post(
        f"{server.base}/agent/api/login",
        json={"name": server.agent_name, "password": server.agent_password},
    ) as resp:
        assert resp.status == 200
        csrf = (await resp.json())["csrf"]
    async with server.http.post(f"{server.base}/agent/api/logout") as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "csrf"
    cookie = next(c for c in server.http.cookie_jar if c.key == "identdesk_session")
    stolen = f"identdesk_session={cookie.value}"
    async with server.http.post(
        f"{server.base}/agent/api/logout", headers={"X-CSRF-Token": csrf}
    ) as resp:
        assert resp.status == 200
    async with server.http.get(f"{server.base}/agent/api/me") as resp:
        assert resp.status == 401
    # a copy of the old cookie is worthless after logout
    async with aiohttp.ClientSession() as other:
        async with other.get(
            f"{server.base}/agent/api/me", headers={"Cookie": stolen}
        ) as resp:
            assert resp.status == 401


async def test_login_hashes_off_the_event_loop(server: Server) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.ensure_future(ticker())
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        with pytest.raises(ApiError):
            await server.svc.accounts.login(server.agent_name, "wrong password!")
        durations.append(time.perf_counter() - started)
    done.set()
    await task
    # hashed on the loop, the loop would stall for about a whole login
    assert max(gaps) < 0.5 * statistics.median(durations), (max(gaps), durations)
