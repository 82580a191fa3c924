"""Settings for one identdesk instance, read from the environment with defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(tz=ZoneInfo("UTC"))


@dataclass
class ServiceHours:
    """Opening hours on every weekday, in a named time zone."""

    opens: time = time(6, 0)
    closes: time = time(22, 0)
    tz: str = "Europe/Berlin"
    always: bool = False

    @classmethod
    def parse(cls, text: str, tz: str = "Europe/Berlin") -> ServiceHours:
        """Parse "06:00-22:00" or "always"."""
        text = text.strip().lower()
        if text in ("always", "24/7", "0-24"):
            return cls(tz=tz, always=True)
        try:
            start, end = text.split("-")
            opens = time.fromisoformat(start.strip())
            closes = time.fromisoformat(end.strip())
        except ValueError as exc:
            raise ValueError(
                f"service hours {text!r} are not of the form HH:MM-HH:MM"
            ) from exc
        if opens >= closes:
            raise ValueError(f"service hours {text!r} close before they open")
        return cls(opens=opens, closes=closes, tz=tz)

    def is_open(self, now: datetime) -> bool:
        if self.always:
            return True
        local = now.astimezone(ZoneInfo(self.tz)).time()
        return self.opens <= local < self.closes

    def next_opening(self, now: datetime) -> datetime:
        """The next moment the service opens (now when it is open)."""
        if self.is_open(now):
            return now
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone)
        day = local.date()
        if local.time() >= self.closes:
            day = day + timedelta(days=1)
        return datetime.combine(day, self.opens, tzinfo=zone)

    def describe(self) -> str:
        if self.always:
            return "always"
        return f"{self.opens:%H:%M}-{self.closes:%H:%M} {self.tz}"


class InvalidSettingError(argparse.ArgumentTypeError, ValueError):
    """A setting's text is not valid; the command line shows the message as is."""


def default_media_workers() -> int:
    """One media worker per core: each worker's event loop runs on one core."""
    return os.cpu_count() or 1


def media_workers_from_env() -> int:
    """IDENTDESK_MEDIA_WORKERS, else one worker per core."""
    return parse_media_workers(_env("MEDIA_WORKERS", "auto"))


def parse_media_workers(text: str) -> int:
    text = text.strip().lower()
    if text in ("", "auto"):
        return default_media_workers()
    try:
        count = int(text)
    except ValueError:
        count = -1
    most = 4 * default_media_workers()
    if count > most:
        raise InvalidSettingError(
            f"media workers {text!r}: at most {most} on this machine (four per "
            "core); one per core is the default"
        )
    if count < 0:
        raise InvalidSettingError(
            f"media workers {text!r}: give a number of processes "
            "(0 = calls in the server process) or 'auto'"
        )
    return count


def parse_public_url(text: str) -> str:
    """IDENTDESK_PUBLIC_URL checked: http(s), a host, no query, no user; no "/" at
    the end."""
    text = text.strip()
    if not text:
        return ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidSettingError(f"IDENTDESK_PUBLIC_URL={text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSettingError(
            f"IDENTDESK_PUBLIC_URL={text!r}: give https://host[:port][/path]"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidSettingError(
            f"IDENTDESK_PUBLIC_URL={text!r}: no user, query or fragment, only "
            "https://host[:port][/path]"
        )
    return text.rstrip("/")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"IDENTDESK_{name}", default)


def _number(name: str, default: str, kind: Callable[[str], float]) -> float:
    text = _env(name, default)
    try:
        return kind(text)
    except ValueError:
        raise InvalidSettingError(
            f"IDENTDESK_{name}={text!r} is not a number"
        ) from None


@dataclass
class Settings:
    """Everything configurable; `Settings.from_env()` reads IDENTDESK_* variables."""

    host: str = "0.0.0.0"
    port: int = 8443
    # base of the links in mails and QR codes; empty: from host, port and
    # certificate (never from a request's Host header, which the client chooses)
    public_url: str = ""
    data_dir: Path = Path("data")
    certs_dir: Path = Path("certs")
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    database_url: str = ""
    smtp_url: str = ""
    mail_from: str = "identdesk <noreply@identdesk.localhost>"
    master_key: str = ""
    service_hours: ServiceHours = field(default_factory=ServiceHours)
    tan_ttl: timedelta = timedelta(hours=24)
    activation_ttl: timedelta = timedelta(days=7)
    # per client address; 10 guesses of a 49.5-bit number per 10 minutes leave an
    # attacker nothing, while a few mistyped numbers on a shared carrier address
    # do not lock out everyone behind it
    tan_attempts: int = 10
    tan_window: timedelta = timedelta(minutes=10)
    callback_timeout: float = 10.0
    stun_urls: tuple[str, ...] = ()
    # media worker processes; 0 carries calls in the server process itself
    media_workers: int = field(default_factory=lambda: default_media_workers())
    # https to public addresses only, unless a test or a local demo allows more
    allow_insecure_callbacks: bool = False
    clock: Clock = system_clock

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from IDENTDESK_* variables; `InvalidSettingError` names the
        first variable that cannot work."""
        tz = _env("TIMEZONE", "Europe/Berlin")
        try:
            ZoneInfo(tz)
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            raise InvalidSettingError(
                f"IDENTDESK_TIMEZONE={tz!r} is not a known time zone"
            ) from None
        cert = _env("TLS_CERT", "")
        key = _env("TLS_KEY", "")
        if bool(cert) != bool(key):
            raise InvalidSettingError(
                "IDENTDESK_TLS_CERT and IDENTDESK_TLS_KEY go together: give both"
            )
        stun = _env("STUN_URLS", "")
        port = int(_number("PORT", "8443", int))
        if not 1 <= port <= 65535:
            raise InvalidSettingError(f"IDENTDESK_PORT={port} is not a port (1-65535)")
        tan_hours = _number("TAN_TTL_HOURS", "24", float)
        if tan_hours <= 0:
            raise InvalidSettingError(
                f"IDENTDESK_TAN_TTL_HOURS={tan_hours:g}: a number must stay valid "
                "for some time"
            )
        smtp = _env("SMTP_URL", "")
        if smtp and not smtp.startswith(("smtp://", "smtps://")):
            raise InvalidSettingError(
                f"IDENTDESK_SMTP_URL must start with smtp:// or smtps://, got "
                f"{smtp.split(':', 1)[0]!r}"
            )
        calls = _env("MAX_CALLS", "")
        if calls and (not calls.strip().isdigit() or int(calls) < 1):
            raise InvalidSettingError(
                f"IDENTDESK_MAX_CALLS={calls!r}: give a whole number of at least 1"
            )
        return cls(
            host=_env("HOST", "0.0.0.0"),
            port=port,
            public_url=parse_public_url(_env("PUBLIC_URL", "")),
            data_dir=Path(_env("DATA_DIR", "data")),
            certs_dir=Path(_env("CERTS_DIR", "certs")),
            tls=_env("TLS", "1") not in ("0", "false", "no"),
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            database_url=_env("DATABASE_URL", ""),
            smtp_url=smtp,
            mail_from=_env("MAIL_FROM", cls.mail_from),
            master_key=_env("MASTER_KEY", ""),
            service_hours=ServiceHours.parse(_env("SERVICE_HOURS", "06:00-22:00"), tz),
            tan_ttl=timedelta(hours=tan_hours),
            stun_urls=tuple(u for u in stun.split(",") if u),
            media_workers=media_workers_from_env(),
            allow_insecure_callbacks=_env("ALLOW_INSECURE_CALLBACKS", "0") == "1",
        )

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'identdesk.sqlite3').resolve()}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"
