"""Prometheus metrics of one ingest app (own registry, so several apps can
live in one process, as they do in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["outcome", "reason"]
        self.batches = Counter("dialback_ingest_batches", "Batches posted, by outcome and reason",
                               labels, registry=self.registry)
        self.bytes = Counter("dialback_ingest_bytes", "Batch bytes posted, by outcome and reason",
                             labels, registry=self.registry)
        self.records = Counter("dialback_ingest_records", "Records posted (rejected: those decoded), "
                               "by outcome and reason", labels, registry=self.registry)
        self.produce_seconds = Histogram(
            "dialback_ingest_produce_seconds", "Time until Kafka acknowledged, by log",
            ["log"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
        )

    def batch(self, outcome: str, reason: str, nbytes: int, records: int) -> None:
        self.batches.labels(outcome, reason).inc()
        self.bytes.labels(outcome, reason).inc(nbytes)
        self.records.labels(outcome, reason).inc(records)
