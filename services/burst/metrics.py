"""Prometheus metrics of the burst service (own registry: several apps may share a process in tests)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BurstMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dialback_burst_operations_requested_total", "operations accepted", ["kind"],
                                registry=self.registry)
        self.finished = Counter("dialback_burst_operations_finished_total", "operations that reached a terminal or running state",
                                ["kind", "status"], registry=self.registry)
        self.to_running = Histogram("dialback_burst_seconds_to_running", "request to every server ACTIVE", ["kind"],
                                    buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800), registry=self.registry)
        self.active = Gauge("dialback_burst_operations_active", "operations not yet cleaned", registry=self.registry)
