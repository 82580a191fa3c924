"""Signed results for partners: RFC 7515 JWS (EdDSA) over the exact callback body.

The callback body is plain JSON; the header `Identdesk-Signature` carries a JWS
with detached content (RFC 7515 appendix F). Partners verify it with the public
key published at /.well-known/jwks.json.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from jwt.algorithms import OKPAlgorithm

from signaling import db
from signaling.cases import CaseStore, State

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Identdesk-Signature"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ResultSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.kid = _b64(raw)[:16]

    @classmethod
    def load_or_create(cls, path: Path) -> ResultSigner:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            assert isinstance(key, Ed25519PrivateKey)
            return cls(key)
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "EdDSA"})
        return {"keys": [jwk]}

    def sign_detached(self, body: bytes) -> str:
        token = jwt.api_jws.encode(
            body, self._key, algorithm="EdDSA", headers={"kid": self.kid}
        )
        header, _, signature = token.split(".")
        return f"{header}..{signature}"


def verify_detached(signature: str, body: bytes, public_key: Ed25519PublicKey) -> bytes:
    """What a partner runs: the body if the signature is good, else raises."""
    header, empty, sig = signature.split(".")
    if empty:
        raise jwt.InvalidSignatureError("signature must have detached content")
    token = f"{header}.{_b64(body)}.{sig}"
    return jwt.api_jws.decode(token, public_key, algorithms=["EdDSA"])


class ResultDelivery:
    """Delivers decisions to callback URLs, persisted so a restart loses none."""

    def __init__(self, store: CaseStore, signer: ResultSigner, settings: Any) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.session: aiohttp.ClientSession | None = None

    async def result(self, case_id: str) -> dict[str, Any]:
        case = await self.store.get(case_id)
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(db.evidence)
                .where(db.evidence.c.case_id == case_id)
                .order_by(db.evidence.c.created_at)
            )
            evidence = [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "media_type": r.media_type,
                    "width": r.width,
                    "height": r.height,
                }
                for r in rows
            ]
            decided_at = (
                await conn.execute(
                    sa.select(db.case_events.c.at)
                    .where(
                        db.case_events.c.case_id == case_id,
                        db.case_events.c.to_state == State.DECIDED.value,
                    )
                    .order_by(db.case_events.c.id.desc())
                )
            ).scalar()
        return {
            **case.public(),
            "decided_at": decided_at,
            "evidence": evidence,
        }

    async def enqueue(self, case_id: str) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                db.deliveries.insert().values(
                    case_id=case_id,
                    next_at=db.utcnow_iso(self.store.now()),
                    created_at=db.utcnow_iso(self.store.now()),
                )
            )
        self._wake.set()

    def start(self) -> None:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.callback_timeout)
        )
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.session:
            await self.session.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("x result delivery round failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except TimeoutError:
                pass

    async def deliver_due(self) -> None:
        now = db.utcnow_iso(self.store.now())
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(db.deliveries).where(
                        db.deliveries.c.delivered_at.is_(None),
                        db.deliveries.c.next_at <= now,
                    )
                )
            ).all()
        for row in rows:
            await self._attempt(row)

    async def _attempt(self, row: Any) -> None:
        case = await self.store.get(row.case_id)
        attempts = row.attempts + 1
        status = "no callback url"
        ok = case.callback_url is None
        if case.callback_url:
            body = json.dumps(await self.result(case.id), sort_keys=True).encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: self.signer.sign_detached(body),
            }
            try:
                assert self.session is not None
                async with self.session.post(
                    case.callback_url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    status = f"HTTP {resp.status}"
                    ok = 200 <= resp.status < 300
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = f"{type(exc).__name__}: {exc}"[:200]
        values: dict[str, Any] = {"attempts": attempts, "last_status": status}
        if ok:
            values["delivered_at"] = db.utcnow_iso(self.store.now())
        else:
            # exponential back-off: 10 s, 20 s, 40 s ... capped at one hour
            delay = min(3600, 10 * 2 ** (attempts - 1))
            values["next_at"] = db.utcnow_iso(
                self.store.now() + timedelta(seconds=delay)
            )
            logger.warning(
                "case %s x callback attempt %d failed: %s", case.id, attempts, status
            )
        async with self.store.engine.begin() as conn:
            await conn.execute(
                db.deliveries.update()
                .where(db.deliveries.c.id == row.id)
                .values(**values)
            )
        if ok and case.callback_url and case.state == State.DECIDED:
            await self.store.transition(
                case.id, State.DELIVERED, "system", f"result delivered: {status}"
            )
