"""`identdesk serve`, `agent add|unlock`, `partner add`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from identdesk.app import build_services, create_app
from signaling.certs import ensure_certificates, lan_addresses
from signaling.config import Settings
from signaling.errors import ApiError
from signaling.services import Services, public_base_url

logger = logging.getLogger(__name__)


def register(commands: Any) -> None:
    serve = commands.add("serve", "run the identdesk service")
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default 8443)")
    serve.add_argument("--data-dir", type=Path, help="data folder (default ./data)")
    serve.add_argument("--no-tls", action="store_true", help="plain HTTP (tests only)")
    serve.set_defaults(func=cmd_serve)

    agent = commands.group("agent", "manage agent accounts")
    add = agent.add_parser("add", help="add an agent; prints a generated password once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the admin role")
    add.add_argument("--data-dir", type=Path)
    add.set_defaults(func=cmd_agent_add)
    unlock = agent.add_parser(
        "unlock", help="lift an agent's login lock and forget its failed logins"
    )
    unlock.add_argument("name")
    unlock.add_argument("--data-dir", type=Path)
    unlock.set_defaults(func=cmd_agent_unlock)

    partner = commands.group("partner", "manage partner API keys")
    padd = partner.add_parser("add", help="add a partner; prints its API key once")
    padd.add_argument("name")
    padd.add_argument("--data-dir", type=Path)
    padd.set_defaults(func=cmd_partner_add)


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise SystemExit(f"error: invalid setting: {exc}") from None
    if getattr(args, "data_dir", None):
        settings.data_dir = args.data_dir
    if getattr(args, "host", None):
        settings.host = args.host
    port = getattr(args, "port", None)
    if port is not None:
        # checked before anything starts, as IDENTDESK_PORT is
        if not 1 <= port <= 65535:
            raise SystemExit(
                f"error: invalid setting: --port {port} is not a port (1-65535)"
            )
        settings.port = port
    if getattr(args, "no_tls", False):
        settings.tls = False
    return settings


def _account_command(
    args: argparse.Namespace, create: Callable[[Services], Awaitable[str]]
) -> int:
    """Open the data folder, run `create`, print its line or the refusal."""

    async def run() -> int:
        svc = await build_services(settings_from(args))
        try:
            print(await create(svc))
        except ApiError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await svc.engine.dispose()
        return 0

    return asyncio.run(run())


def cmd_agent_add(args: argparse.Namespace) -> int:
    async def create(svc: Services) -> str:
        role = "admin" if args.admin else "agent"
        agent, password = await svc.accounts.add_agent(args.name, role=role)
        return f"agent {agent.name} added; password (shown once): {password}"

    return _account_command(args, create)


def cmd_agent_unlock(args: argparse.Namespace) -> int:
    async def unlock(svc: Services) -> str:
        await svc.accounts.unlock(args.name)
        return f"agent {args.name} unlocked; its failed logins are forgotten"

    return _account_command(args, unlock)


def cmd_partner_add(args: argparse.Namespace) -> int:
    async def create(svc: Services) -> str:
        partner_id, key = await svc.accounts.add_partner(args.name)
        return f"partner {args.name} ({partner_id}) added; API key (shown once): {key}"

    return _account_command(args, create)


async def first_start(svc: Services) -> list[str]:
    """Create the admin agent and a demo partner on an empty database."""
    lines = []
    if await svc.accounts.count_agents() == 0:
        agent, password = await svc.accounts.add_agent("admin", role="admin")
        lines.append(f"admin agent created: name {agent.name}, password {password}")
        lines.append("  (shown once; add agents with `identdesk agent add NAME`)")
    if await svc.accounts.count_partners() == 0:
        partner_id, key = await svc.accounts.add_partner("demo")
        lines.append(f"demo partner created: API key {key}")
        lines.append("  (shown once; add partners with `identdesk partner add NAME`)")
    return lines


def banner(settings: Settings, ca: Path | None) -> list[str]:
    scheme = settings.scheme
    port = settings.port
    hosts = lan_addresses() if settings.host in ("0.0.0.0", "::") else [settings.host]
    lines = ["identdesk is running:"]
    for host in hosts:
        lines.append(f"  phone page:    {scheme}://{host}:{port}/phone/")
        lines.append(f"  agent console: {scheme}://{host}:{port}/agent/")
    if ca is not None:
        lines.append(f"To trust this server on a phone, install the local CA {ca}:")
        lines.append(
            f"  open {scheme}://{hosts[-1]}:{port}/ca.pem on the phone, accept the"
        )
        lines.append("  warning once, install it (README: 'From a real phone on the")
        lines.append("  same network').")
    lines.append(
        f"Links in e-mails: {public_base_url(settings)}/ (IDENTDESK_PUBLIC_URL)"
    )
    lines.append(f"Service hours: {settings.service_hours.describe()}")
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def run() -> None:
        # SIGTERM and Ctrl-C end live calls cleanly: recordings are closed, phones
        # told, the database left consistent; caught from the start, so a signal
        # during start-up (or just after the banner) still stops in order
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        ssl_context = None
        ca = None
        if settings.tls:
            if settings.tls_cert and settings.tls_key:
                cert, key = settings.tls_cert, settings.tls_key
            else:
                ca, cert, key = ensure_certificates(settings.certs_dir)
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise ServeError(
                    f"cannot load the certificate {cert} / key {key}: {exc}"
                ) from None
        try:
            svc = await build_services(settings)
        except ImportError as exc:
            raise ServeError(
                f"IDENTDESK_DATABASE_URL needs a driver that is not installed: {exc}"
            ) from None
        except ValueError as exc:  # e.g. a master key that is not 32 bytes
            raise ServeError(f"invalid setting: {exc}") from None
        notes = await first_start(svc)
        app = await create_app(settings, svc)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, settings.host, settings.port, ssl_context=ssl_context
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()  # media workers stop, nothing half-started stays
            raise ServeError(
                f"cannot listen on {settings.host}:{settings.port}: {exc}"
            ) from None
        for line in notes + banner(settings, ca):
            print(line, flush=True)

        try:
            await stop.wait()
            logger.info("- shutting down: %d live calls are closed", len(svc.hub.calls))
        finally:
            await runner.cleanup()
        logger.info("- stopped")

    try:
        with data_folder_lock(settings.data_dir):
            asyncio.run(run())
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


class ServeError(Exception):
    """Serving cannot start; the message says why."""


@contextlib.contextmanager
def data_folder_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data folder for this server alone.

    A second server on the same folder would put the first one's waiting and live
    cases back as interrupted while they are being served."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / "identdesk.lock", "a")  # noqa: SIM115
    except OSError as exc:
        raise ServeError(f"cannot use the data folder {data_dir}: {exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServeError(
                f"another identdesk server is using the data folder {data_dir}"
            ) from None
        yield
