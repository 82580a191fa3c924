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

    def base_url(self, request: web.Request | None = None) -> str:
        """The URL phones reach us at: configured, else what the client used."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if request is not None:
            return f"{request.scheme}://{request.host}"
        return f"{self.settings.scheme}://localhost:{self.settings.port}"


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
