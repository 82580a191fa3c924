"""Outgoing e-mail: .eml files in an outbox folder (embedded default) or SMTP."""

from __future__ import annotations

import logging
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

logger = logging.getLogger(__name__)

TEXTS = {
    "activation": {
        "de": (
            "Ihre Video-Identifizierung",
            "Guten Tag,\n\nbitte starten Sie Ihre Video-Identifizierung über diesen "
            "Link:\n\n{link}\n\nDer Link ist {days} Tage gültig.\n",
        ),
        "en": (
            "Your video identification",
            "Hello,\n\nplease start your video identification with this link:\n\n"
            "{link}\n\nThe link is valid for {days} days.\n",
        ),
    },
    "tan": {
        "de": (
            "Ihre Vorgangsnummer",
            "Guten Tag,\n\nIhre Vorgangsnummer lautet: {tan}\n\nÖffnen Sie die "
            "Video-Identifizierung auf Ihrem Smartphone und geben Sie die Nummer "
            "ein:\n\n{link}\n\nSie ist gültig bis {until}.\n",
        ),
        "en": (
            "Your transaction number",
            "Hello,\n\nyour transaction number is: {tan}\n\nOpen the video "
            "identification on your smartphone and enter the number:\n\n{link}\n\n"
            "It is valid until {until}.\n",
        ),
    },
    "call_tan": {
        "de": (
            "Ihr Code für die Video-Identifizierung",
            "Guten Tag,\n\nIhr Mitarbeiter hat Ihnen während des Gesprächs diesen "
            "Code gesendet: {tan}\n\nBitte geben Sie ihn jetzt auf Ihrem Smartphone "
            "ein, ohne das Gespräch zu beenden. Er ist {minutes} Minuten gültig.\n",
        ),
        "en": (
            "Your code for the video identification",
            "Hello,\n\nthe agent sent you this code during your call: {tan}\n\n"
            "Please enter it on your smartphone now, without ending the call. It is "
            "valid for {minutes} minutes.\n",
        ),
    },
}


def compose(
    sender: str, to: str, kind: str, locale: str, **values: str
) -> EmailMessage:
    subject, body = TEXTS[kind].get(locale, TEXTS[kind]["de"])
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="identdesk.localhost")
    msg.set_content(body.format(**values))
    return msg


class Mailer:
    """Sends a message; the recipient address is never logged."""

    def __init__(self, outbox: Path, smtp_url: str = "") -> None:
        self.outbox = outbox
        self.smtp_url = smtp_url

    async def send(
        self, msg: EmailMessage, label: str, case_id: str | None = None
    ) -> None:
        if self.smtp_url:
            await self._send_smtp(msg)
            logger.info("%s - mail %r sent by SMTP", label, msg["Subject"])
            return
        self.outbox.mkdir(parents=True, exist_ok=True)
        # named by case, so a withdrawal can delete what was written for the case
        prefix = f"{case_id}-" if case_id else ""
        path = self.outbox / f"{prefix}{uuid.uuid4().hex}.eml"
        path.write_bytes(bytes(msg))
        logger.info("%s - mail %r written to %s", label, msg["Subject"], path)

    def forget(self, case_id: str) -> int:
        """Delete the outbox mails of a case (they hold its address and numbers)."""
        removed = 0
        for path in self.outbox.glob(f"{case_id}-*.eml"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    async def _send_smtp(self, msg: EmailMessage) -> None:
        # smtp://user:password@host:port, smtps:// for implicit TLS
        url = urlsplit(self.smtp_url)
        await aiosmtplib.send(
            msg,
            hostname=url.hostname or "localhost",
            port=url.port or (465 if url.scheme == "smtps" else 25),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
            use_tls=url.scheme == "smtps",
            start_tls=None if url.scheme == "smtps" else "starttls" in url.query,
            timeout=30,
        )
