"""Agent accounts (Argon2id passwords, lockout) and partner API keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy.ext.asyncio import AsyncEngine

from signaling import db
from signaling.config import Clock
from signaling.errors import ApiError

logger = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
_hasher = PasswordHasher()  # Argon2id, RFC 9106 defaults of argon2-cffi


@dataclass
class Agent:
    id: int
    name: str
    role: str
    session_epoch: int = 0


def _password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except VerificationError:
        return False


def _login_failed() -> ApiError:
    return ApiError(401, "login_failed", "name or password is wrong")


# A per-process key: failed logins under one unknown name can be matched in the
# logs, but the name (perhaps a password typed into the wrong field) not read.
_TAG_KEY = secrets.token_bytes(16)


def name_tag(name: str) -> str:
    digest = hmac.new(_TAG_KEY, name.encode(errors="replace"), hashlib.sha256)
    return "name-" + digest.hexdigest()[:8]


def api_key_digest(key: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is enough to store them
    return hashlib.sha256(key.encode()).hexdigest()


class Accounts:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    async def add_agent(
        self, name: str, password: str | None = None, role: str = "agent"
    ) -> tuple[Agent, str]:
        """Create an agent; returns it with the password (generated when not given)."""
        if (
            not name
            or len(name) > 100
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ApiError(
                400,
                "bad_agent_name",
                f"agent name {name!r} must be letters, digits, - _ .",
            )
        password = password or secrets.token_urlsafe(12)
        if len(password) < 10:
            raise ApiError(
                400, "weak_password", "a password needs at least 10 characters"
            )
        async with self.engine.begin() as conn:
            exists = (
                await conn.execute(
                    sa.select(db.agents.c.id).where(db.agents.c.name == name)
                )
            ).first()
            if exists:
                raise ApiError(409, "agent_exists", f"an agent named {name!r} exists")
            result = await conn.execute(
                db.agents.insert().values(
                    name=name,
                    password_hash=_hasher.hash(password),
                    role=role,
                    created_at=db.utcnow_iso(self.clock()),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            agent_id = int(key[0])
        logger.info("- agent %s added (role %s)", name, role)
        return Agent(agent_id, name, role), password

    async def count_agents(self) -> int:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).select_from(db.agents))
            ).scalar_one()

    async def get_agent(self, agent_id: int) -> Agent | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.agents).where(db.agents.c.id == agent_id)
                )
            ).first()
        return Agent(row.id, row.name, row.role, row.session_epoch) if row else None

    async def login(self, name: str, password: str) -> Agent:
        """The agent; else 401 with one answer for an unknown name, a wrong password
        and a locked account, so names cannot be told apart. Repeated failures lock
        the account for a while."""
        now = self.clock()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(db.agents).where(db.agents.c.name == name))
            ).first()
        if row is None:
            # the cost of a real check: no names by timing
            await asyncio.to_thread(_hasher.hash, password)
            logger.warning("x failed login for unknown name %s", name_tag(name))
            raise _login_failed()
        # a hash takes about 0.25 s of one core: off the event loop, where calls run
        matches = await asyncio.to_thread(
            _password_matches, row.password_hash, password
        )
        if row.locked_until and datetime.fromisoformat(row.locked_until) > now:
            # checked after the hash, which a locked account costs too
            logger.warning(
                "x login refused for agent %s: locked until %s", name, row.locked_until
            )
            raise _login_failed()
        if not matches:
            await self._count_failure(row, now)
            raise _login_failed()
        async with self.engine.begin() as conn:
            values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            await conn.execute(
                db.agents.update().where(db.agents.c.id == row.id).values(**values)
            )
        return Agent(row.id, row.name, row.role, row.session_epoch)

    async def _count_failure(self, row: Any, now: datetime) -> None:
        failed = row.failed_logins + 1
        locked = db.utcnow_iso(now + LOCKOUT) if failed >= MAX_FAILED_LOGINS else None
        async with self.engine.begin() as conn:
            await conn.execute(
                db.agents.update()
                .where(db.agents.c.id == row.id)
                .values(failed_logins=0 if locked else failed, locked_until=locked)
            )
        logger.warning("x failed login for agent %s (%d)", row.name, failed)
        if locked:
            logger.warning("x agent %s locked until %s", row.name, locked)

    async def unlock(self, name: str) -> None:
        """Lift the agent's lock and forget its failed logins."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                db.agents.update()
                .where(db.agents.c.name == name)
                .values(failed_logins=0, locked_until=None)
            )
        if result.rowcount == 0:
            raise ApiError(404, "agent_unknown", f"no agent named {name!r}")
        logger.info("- agent %s unlocked", name)

    async def end_sessions(self, agent_id: int) -> None:
        """Log the agent out everywhere: older session cookies stop working."""
        async with self.engine.begin() as conn:
            await conn.execute(
                db.agents.update()
                .where(db.agents.c.id == agent_id)
                .values(session_epoch=db.agents.c.session_epoch + 1)
            )

    async def add_partner(self, name: str) -> tuple[str, str]:
        """Create a partner; returns (partner id, API key shown once)."""
        partner_id = uuid.uuid4().hex[:12]
        key = "idk_" + secrets.token_urlsafe(32)
        async with self.engine.begin() as conn:
            exists = (
                await conn.execute(
                    sa.select(db.partners.c.id).where(db.partners.c.name == name)
                )
            ).first()
            if exists:
                raise ApiError(
                    409, "partner_exists", f"a partner named {name!r} exists"
                )
            await conn.execute(
                db.partners.insert().values(
                    id=partner_id,
                    name=name,
                    api_key_hash=api_key_digest(key),
                    created_at=db.utcnow_iso(self.clock()),
                )
            )
        logger.info("- partner %s added (%s)", name, partner_id)
        return partner_id, key

    async def partner_by_key(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(db.partners.c.id).where(
                        db.partners.c.api_key_hash == api_key_digest(key)
                    )
                )
            ).first()
        return row.id if row else None

    async def count_partners(self) -> int:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).select_from(db.partners))
            ).scalar_one()
