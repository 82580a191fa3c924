"""The shared services of one running instance, stored on the aiohttp app."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.accounts import Accounts
from signaling.calls import CallHub
from signaling.cases import CaseStore
from signaling.certs import link_host
from signaling.config import Settings
from signaling.evidence import EvidenceStore
from signaling.mail import Mailer
from signaling.metrics import Metrics
from signaling.ratelimit import FailureLimiter
from signaling.results import ResultDelivery, ResultSigner
from signaling.vault import Vault


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    vault: Vault
    store: CaseStore
    accounts: Accounts
    evidence: EvidenceStore
    mailer: Mailer
    hub: CallHub
    signer: ResultSigner
    delivery: ResultDelivery
    tan_limiter: FailureLimiter
    login_limiter: FailureLimiter
    web_root: Path
    metrics: Metrics
    # every open WebSocket, so a shutdown can close them instead of waiting
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(
        default_factory=weakref.WeakSet
    )

    @property
    def base_url(self) -> str:
        """The URL links in mails point to: IDENTDESK_PUBLIC_URL, else this server's
        own address; never a request's Host header, which any client can set."""
        return public_base_url(self.settings)


def public_base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = link_host(settings.host, settings.tls_cert if settings.tls else None)
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if settings.tls else 80
    port = "" if settings.port == default_port else f":{settings.port}"
    return f"{settings.scheme}://{host}{port}"


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


# A per-process key: log lines can be matched to each other, but an address
# (personal data under the GDPR) cannot be read back from them.
_TAG_KEY = secrets.token_bytes(16)


def client_tag(request: web.Request) -> str:
    """A short pseudonym of the client's address for log lines."""
    digest = hmac.new(_TAG_KEY, client_address(request).encode(), hashlib.sha256)
    return "client-" + digest.hexdigest()[:8]
