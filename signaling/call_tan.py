"""The in-call TAN: a one-time code e-mailed during the call and entered on the phone.

Supervisors ask for a TAN sent by e-mail or SMS and entered during the same
uninterrupted call (BaFin video-ident circular). The code lives with the running
call, in memory, only as a keyed hash; a new call starts without one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from signaling.tan import tan_digest

DIGITS = 6
# long enough to open the mail on the same phone, short enough to stay in the call
LIFETIME = timedelta(minutes=10)
# three wrong entries void the code: 3 in 10**6 guesses per code sent
MAX_WRONG = 3
# the vault derives the hashing key for this purpose from the master key
KEY_PURPOSE = b"call tan"


@dataclass
class CallTan:
    """One issued code: its keyed hash and how the entries went."""

    digest: str
    issued: datetime
    wrong: int = 0
    confirmed: bool = False

    @property
    def locked(self) -> bool:
        return self.wrong >= MAX_WRONG

    @property
    def attempts_left(self) -> int:
        return max(0, MAX_WRONG - self.wrong)

    def expired(self, now: datetime) -> bool:
        return now - self.issued > LIFETIME

    def matches(self, key: bytes, code: str) -> bool:
        """Compare an entry; a wrong one counts against the code."""
        if hmac.compare_digest(tan_digest(key, code), self.digest):
            self.confirmed = True
            return True
        self.wrong += 1
        return False


def issue(key: bytes, now: datetime) -> tuple[CallTan, str]:
    """A fresh random code and the state that keeps only its keyed hash."""
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    return CallTan(tan_digest(key, code), now), code


def normalize(text: str) -> str | None:
    """Digits only, spaces dropped; None when it cannot be a code."""
    cleaned = "".join(ch for ch in text if ch not in " -\t")
    if len(cleaned) != DIGITS or not cleaned.isascii() or not cleaned.isdigit():
        return None
    return cleaned
