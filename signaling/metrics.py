"""Prometheus metrics of one instance (served at /metrics to loopback clients)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cases_created = Counter(
            "identdesk_cases_created", "cases created by partners", registry=r
        )
        self.decisions = Counter(
            "identdesk_decisions", "decisions by outcome", ["decision"], registry=r
        )
        self.snapshots = Counter(
            "identdesk_snapshots", "snapshots captured", ["kind"], registry=r
        )
        self.tan_failures = Counter(
            "identdesk_tan_failures",
            "well-formed transaction numbers that matched no case (join or check); "
            "malformed entries are typing mistakes and not counted",
            registry=r,
        )
        self.calls_active = Gauge("identdesk_calls_active", "live calls", registry=r)
        self.queue_waiting = Gauge(
            "identdesk_queue_waiting", "phones waiting in the queue", registry=r
        )

    def watch(self, calls: Callable[[], int], waiting: Callable[[], int]) -> None:
        self.calls_active.set_function(calls)
        self.queue_waiting.set_function(waiting)

    def render(self) -> bytes:
        return generate_latest(self.registry)
