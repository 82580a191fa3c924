"""Transaction numbers ("Vorgangsnummer"): easy to type and to read out.

Ten characters from a 31-letter alphabet without 0/O, 1/I/L give 49.5 bits of
randomness, shown in two groups of five ("K7M2Q-4XTRB").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 10
GROUP = 5

# what people type for a letter we never issue
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_tan() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return format_tan(raw)


def format_tan(raw: str) -> str:
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalize_tan(text: str) -> str | None:
    """Upper-case, drop spaces and dashes; None when it cannot be a TAN."""
    cleaned = "".join(ch for ch in text.upper() if ch not in " -\t.")
    cleaned = cleaned.translate(_LOOKALIKES)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def tan_digest(secret: bytes, normalized: str) -> str:
    """The stored form: a keyed hash, so a database dump reveals no usable number."""
    return hmac.new(secret, normalized.encode(), hashlib.sha256).hexdigest()
