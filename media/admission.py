"""Admission control: refuse a call when the media process is full.

A refused call gets a clear message at once; admitting it would make every call
on the machine stutter.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

# CPU of one 720p30 call relayed, recorded and tapped on demand (cores), rounded
# up from `identdesk bench media` on a 2-core machine: 0.084 per call with 8
# calls, 0.136 with 1 call (2.9 Mbit/s test pattern)
CORES_PER_CALL = 0.1
# share of the machine's cores calls may use; the rest is for signaling, snapshot
# tools and bursts (keyframes, reconnects)
CPU_BUDGET = 0.7
# All calls of a process share one event loop, and with it one core (the GIL):
# past ~0.8 of it the loop runs late, sockets overflow and video freezes; hence
# media worker processes (`media.workers`), one per core.
PROCESS_CORES = 0.8
ENV_MAX_CALLS = "IDENTDESK_MAX_CALLS"


class GatewayFullError(RuntimeError):
    """Raised when a new call would exceed the media gateway's capacity."""

    def __init__(self, max_calls: int) -> None:
        super().__init__(
            f"the media gateway is at its limit of {max_calls} concurrent calls;"
            " try again in a few minutes"
        )
        self.max_calls = max_calls


def default_max_calls(cpu_count: int | None = None, processes: int = 1) -> int:
    """Calls the machine can carry in `processes` media processes: the env
    override, else from the CPUs."""
    override = os.environ.get(ENV_MAX_CALLS, "").strip()
    if override.isdigit() and int(override) >= 1:
        return int(override)
    # anything else is refused with a clear message by the settings
    cores = min(
        (cpu_count or os.cpu_count() or 1) * CPU_BUDGET,
        max(processes, 1) * PROCESS_CORES,
    )
    return max(1, round(cores / CORES_PER_CALL))


class Admission:
    """Counts the calls of the machine against `max_calls`."""

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls if max_calls is not None else default_max_calls()
        self._labels: set[str] = set()

    @property
    def active(self) -> int:
        return len(self._labels)

    def admit(self, label: str) -> None:
        """Take a slot for `label` or raise `GatewayFullError`."""
        if label in self._labels:
            return
        if len(self._labels) >= self.max_calls:
            logger.warning("%s x refused: %d calls active", label, len(self._labels))
            raise GatewayFullError(self.max_calls)
        self._labels.add(label)

    def release(self, label: str) -> None:
        self._labels.discard(label)


# the process-wide admission every MediaGateway uses unless given its own
admission = Admission()
