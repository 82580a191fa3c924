import aiohttp
import pytest

from signaling.accounts import MAX_FAILED_LOGINS
from signaling.errors import ApiError
from tests.conftest import Server


async def test_login_locks_after_repeated_failures(server: Server, clock) -> None:
    accounts = server.svc.accounts
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(ApiError, match="name or password is wrong"):
            await accounts.login(server.agent_name, "wrong password!")
    with pytest.raises(ApiError) as info:
        await accounts.login(server.agent_name, server.agent_password)
    assert info.value.code == "account_locked"
    clock.advance(minutes=16)
    agent = await accounts.login(server.agent_name, server.agent_password)
    assert agent.name == server.agent_name


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
