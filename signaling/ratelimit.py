"""Per-client failure counting for guessable secrets (transaction numbers, logins)."""

from __future__ import annotations

import time
from collections import deque


class FailureLimiter:
    """At most `limit` failures per client within `window` seconds."""

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self._clock()
        entries = self._failures.setdefault(client, deque())
        while entries and entries[0] <= now - self.window:
            entries.popleft()
        return entries

    def retry_after(self, client: str) -> float:
        """Seconds until the client may try again; 0 when it may now."""
        entries = self._recent(client)
        if len(entries) < self.limit:
            return 0.0
        return max(0.0, entries[0] + self.window - self._clock())

    def fail(self, client: str) -> None:
        self._recent(client).append(self._clock())
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeed(self, client: str) -> None:
        self._failures.pop(client, None)


def wait_text(seconds: float) -> str:
    """'in 40 s' or 'in about 7 minutes': what a person can act on."""
    if seconds <= 90:
        return f"in {int(seconds) + 1} s"
    return f"in about {round(seconds / 60)} minutes"
