"""Signed results for partners: RFC 7515 JWS (EdDSA) over the exact callback body.

The callback body is plain JSON; the header `Identdesk-Signature` carries a JWS
with detached content (RFC 7515 appendix F). Partners verify it with the public
key published at /.well-known/jwks.json.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import sqlalchemy as sa
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from jwt.algorithms import OKPAlgorithm
from yarl import URL

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


# -- where callbacks may go --------------------------------------------------------
# A callback is a request from inside the service's network to an address a
# partner names: only public internet addresses, or it reaches what the service
# can reach (server-side request forgery).

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# names that stand for this machine or a private network (RFC 6761, RFC 8375)
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".arpa")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: IPv4 inside
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


class CallbackRefused(OSError):
    """The callback's destination is not on the public internet; not retried."""


def literal_address(host: str) -> Address | None:
    """The address a host written as a number stands for, in every form resolvers
    take: dotted, integer, hex, octal, shortened, IPv6; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # the C library's reading, which getaddrinfo applies to such hosts
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError, UnicodeError):
        return None


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: Address) -> str | None:
    """Why a callback may not go to this address; None for a public one."""
    for each in (address, _embedded_ipv4(address)):
        if each is None:
            continue
        # is_global alone lets multicast and IPv4-compatible (::/8) through
        if not each.is_global or each.is_multicast or each.is_reserved:
            return "is not a public address"
    return None


def host_refusal(host: str) -> str | None:
    """Why a callback may not go to this host as written; None when it may
    (a name is resolved and its addresses checked when the callback is sent)."""
    name = host.lower().rstrip(".")
    address = literal_address(name)
    if address is not None:
        refusal = address_refusal(address)
        if refusal and str(address) != host.lower():
            refusal += f" ({address})"
        return refusal
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        return "is not a valid address"  # top-level domains are never numbers
    if "." not in name or name in LOCAL_NAMES or name.endswith(LOCAL_SUFFIXES):
        return "is not a public host"
    return None


def callback_refusal(url: str, public_only: bool = True) -> str | None:
    """Why a result may not be sent to this URL: https to a public host only;
    without `public_only` any http(s) URL."""
    try:
        parsed = URL(url)
    except ValueError:
        return f"callback_url {url[:80]!r} must be an http(s) URL"
    host = parsed.raw_host  # as aiohttp connects to it (IDNA, e.g. a circled l)
    if parsed.scheme not in ("https", "http") or not host:
        return f"callback_url {url[:80]!r} must be an http(s) URL"
    if not public_only:
        return None
    if parsed.scheme != "https":
        return f"callback_url {url[:80]!r} must use https"
    refusal = host_refusal(host)
    return f"callback_url host {host[:80]!r} {refusal}" if refusal else None


class PublicResolver(AbstractResolver):
    """Resolves callback hosts and refuses a name with any address that is not
    public before anything connects; the connection then goes to the addresses
    checked here, so a name cannot change its answer in between."""

    def __init__(
        self, inner: AbstractResolver | None, allow_all: Callable[[], bool]
    ) -> None:
        self.inner = inner
        self.allow_all = allow_all

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self.inner is None:
            self.inner = ThreadedResolver()
        found = await self.inner.resolve(host, port, family)
        if self.allow_all():
            return found
        for entry in found:
            refusal = address_refusal(ipaddress.ip_address(entry["host"]))
            if refusal:
                raise CallbackRefused(
                    f"callback host {host[:80]!r} resolves to {entry['host']}, "
                    f"which {refusal}"
                )
        return found

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()


class ResultDelivery:
    """Delivers decisions to callback URLs, persisted so a restart loses none."""

    def __init__(
        self,
        store: CaseStore,
        signer: ResultSigner,
        settings: Any,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        # IDENTDESK_ALLOW_INSECURE_CALLBACKS=1 (tests, local demos) lets callbacks
        # go to loopback and private addresses; read at each callback
        self.resolver = PublicResolver(
            resolver, lambda: bool(settings.allow_insecure_callbacks)
        )
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
            connector=aiohttp.TCPConnector(resolver=self.resolver),
            timeout=aiohttp.ClientTimeout(total=self.settings.callback_timeout),
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
        status, ok, refused = "no callback url", case.callback_url is None, False
        if case.callback_url:
            status, ok, refused = await self._post(case.id, case.callback_url)
        values: dict[str, Any] = {"attempts": attempts, "last_status": status[:200]}
        if ok:
            values["delivered_at"] = db.utcnow_iso(self.store.now())
        elif refused:
            # a destination the policy refuses stays refused: no retries
            values["next_at"] = None
            logger.warning(
                "case %s x callback refused, not retried: %s", case.id, status
            )
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

    async def _post(self, case_id: str, url: str) -> tuple[str, bool, bool]:
        """POST the signed result; returns (status text, delivered, refused)."""
        if not self.settings.allow_insecure_callbacks:
            # checked at case creation too; hosts written as addresses never
            # reach the resolver, and the setting may have changed since
            refusal = callback_refusal(url)
            if refusal:
                return f"refused: {refusal}", False, True
        body = json.dumps(await self.result(case_id), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: self.signer.sign_detached(body),
        }
        try:
            assert self.session is not None
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 300 <= resp.status < 400:
                    return (
                        f"HTTP {resp.status}: redirects are not followed",
                        False,
                        False,
                    )
                return f"HTTP {resp.status}", 200 <= resp.status < 300, False
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc.__cause__, CallbackRefused):
                return f"refused: {exc.__cause__}", False, True
            return f"{type(exc).__name__}: {exc}", False, False
