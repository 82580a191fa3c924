"""Per-client failure counting for guessable secrets (transaction numbers, logins)."""

from __future__ import annotations

import time
from collections import deque

# a client address, or a tuple such as (address, account name)
Key = str | tuple[str, ...]


class FailureLimiter:
    """At most `limit` failures per key within `window` seconds."""

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[Key, deque[float]] = {}
        self._known: dict[Key, float] = {}  # key -> until when it counts as known

    def _recent(self, key: Key) -> deque[float]:
        now = self._clock()
        entries = self._failures.setdefault(key, deque())
        while entries and entries[0] <= now - self.window:
            entries.popleft()
        return entries

    def retry_after(self, key: Key, limit: int | None = None) -> float:
        """Seconds until the key may try again (0 when it may now); `limit`
        overrides the limiter's own, e.g. for a wider key's ceiling."""
        most = self.limit if limit is None else limit
        entries = self._recent(key)
        if len(entries) < most:
            return 0.0
        return max(0.0, entries[-most] + self.window - self._clock())

    def fail(self, key: Key) -> None:
        self._recent(key).append(self._clock())
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeed(self, key: Key, known_for: float = 0.0) -> None:
        """Forget the key's failures; with `known_for`, remember for that many
        seconds that it succeeded (see `known`)."""
        self._failures.pop(key, None)
        if known_for > 0:
            self._known.pop(key, None)  # re-inserted last: the oldest go first
            self._known[key] = self._clock() + known_for
            if len(self._known) > 10_000:
                self._known.pop(next(iter(self._known)))

    def known(self, key: Key) -> bool:
        """Whether the key succeeded lately (within its `known_for`)."""
        until = self._known.get(key)
        if until is not None and until <= self._clock():
            del self._known[key]
            return False
        return until is not None


def wait_text(seconds: float) -> str:
    """'in 40 s' or 'in about 7 minutes': what a person can act on."""
    if seconds <= 90:
        return f"in {int(seconds) + 1} s"
    return f"in about {round(seconds / 60)} minutes"
