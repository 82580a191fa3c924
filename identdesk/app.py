"""The composition root: builds the services and the aiohttp application."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import WSCloseCode, web
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from agent_console import auth as agent_auth
from agent_console import desk as agent_desk
from media.admission import admission, default_max_calls
from media.workers import WorkerPool
from signaling import pages, partner_api, user_path
from signaling.accounts import Accounts
from signaling.calls import CallHub
from signaling.cases import CaseStore
from signaling.config import Settings
from signaling.db import connect
from signaling.errors import error_middleware
from signaling.evidence import EvidenceStore
from signaling.mail import Mailer
from signaling.metrics import Metrics
from signaling.ratelimit import FailureLimiter
from signaling.results import ResultDelivery, ResultSigner
from signaling.services import SERVICES, Services
from signaling.vault import Vault, load_master_key

logger = logging.getLogger(__name__)

SWEEPER = web.AppKey("sweeper", asyncio.Task)
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def media_pool(settings: Settings) -> WorkerPool | None:
    """The media worker pool the settings ask for (not yet started), or None."""
    if settings.media_workers < 1:
        return None
    admission.max_calls = default_max_calls(processes=settings.media_workers)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    return WorkerPool(settings.media_workers, str(level), admission)


async def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = await connect(settings.db_url)
    vault = Vault(load_master_key(settings.data_dir, settings.master_key))
    store = CaseStore(engine, vault, settings)
    signer = ResultSigner.load_or_create(
        settings.data_dir / "keys" / "result-signing.pem"
    )
    window = settings.tan_window.total_seconds()
    return Services(
        settings=settings,
        engine=engine,
        vault=vault,
        store=store,
        accounts=Accounts(engine, settings.clock),
        evidence=(
            evidence := EvidenceStore(settings.data_dir / "evidence", vault, store)
        ),
        mailer=Mailer(settings.data_dir / "outbox", settings.smtp_url),
        hub=CallHub(store, evidence, settings, media_pool(settings)),
        signer=signer,
        delivery=ResultDelivery(store, signer, settings),
        tan_limiter=FailureLimiter(settings.tan_attempts, window),
        login_limiter=FailureLimiter(10, window),
        web_root=WEB_ROOT,
        metrics=Metrics(),
    )


@web.middleware
async def security_headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/") or request.path.startswith("/agent/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / "index.html")


def _static_page(folder: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / folder / "index.html")

    return handler


async def create_app(
    settings: Settings, svc: Services | None = None
) -> web.Application:
    svc = svc or await build_services(settings)
    app = web.Application(middlewares=[security_headers, error_middleware])
    app[SERVICES] = svc
    setup_sessions(
        app,
        EncryptedCookieStorage(
            svc.vault.derive(b"session"),
            cookie_name="identdesk_session",
            secure=settings.tls,
            httponly=True,
            samesite="Strict",
            max_age=10 * 3600,  # a shift plus breaks
        ),
    )
    app.add_routes(partner_api.routes)
    app.add_routes(user_path.routes)
    app.add_routes(agent_auth.routes)
    app.add_routes(agent_desk.routes)
    app.add_routes(pages.routes)
    app.router.add_get("/", index)

    async def terms(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / "terms.html")

    app.router.add_get("/terms", terms)
    app.router.add_get("/phone/", _static_page("phone"))
    app.router.add_get("/agent/", _static_page("agent"))
    app.router.add_static("/static/", WEB_ROOT, show_index=False)

    async def ca_certificate(request: web.Request) -> web.StreamResponse:
        ca = settings.certs_dir / "ca.pem"
        if not ca.exists():
            raise web.HTTPNotFound(text="this server uses the operator's certificate")
        return web.Response(
            body=ca.read_bytes(),
            content_type="application/x-x509-ca-cert",
            headers={"Content-Disposition": 'attachment; filename="identdesk-ca.crt"'},
        )

    app.router.add_get("/ca.pem", ca_certificate)

    async def metrics(request: web.Request) -> web.Response:
        # figures only for the operator's scraper on this machine
        if request.remote not in ("127.0.0.1", "::1"):
            raise web.HTTPForbidden(text="metrics are served to loopback clients only")
        return web.Response(
            body=svc.metrics.render(), content_type="text/plain", charset="utf-8"
        )

    app.router.add_get("/metrics", metrics)
    svc.metrics.watch(lambda: len(svc.hub.calls), lambda: len(svc.hub.queue))

    async def expire_periodically() -> None:
        while True:
            try:
                expired = await svc.store.expire_stale()
                if expired:
                    logger.info("- %d cases expired", expired)
            except Exception:
                logger.exception("x expiring cases failed")
            await asyncio.sleep(60)

    async def on_startup(app: web.Application) -> None:
        if svc.hub.pool is not None:
            await svc.hub.pool.start()
        await svc.evidence.close_interrupted()
        reset = await svc.store.reset_interrupted()
        if reset:
            logger.info("- %d interrupted calls put back to consented", reset)
        svc.delivery.start()
        app[SWEEPER] = asyncio.ensure_future(expire_periodically())

    async def on_shutdown(app: web.Application) -> None:
        # before aiohttp waits for open connections: end the calls (recordings
        # closed, both sides told), then close every socket
        await svc.hub.close_all()
        for ws in list(svc.sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")

    async def on_cleanup(app: web.Application) -> None:
        app[SWEEPER].cancel()
        await asyncio.gather(app[SWEEPER], return_exceptions=True)
        # the calls were ended in on_shutdown, which aiohttp always runs first
        if svc.hub.pool is not None:
            await svc.hub.pool.close()
        await svc.delivery.stop()
        await svc.engine.dispose()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
