"""Prometheus metrics of one analyzer app (own registry, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class AnalyzerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.analyses = Counter("dialback_analyzer_analyses", "Analyses requested, by outcome",
                                ["outcome"], registry=self.registry)
        self.seconds = Histogram("dialback_analyzer_analysis_seconds", "Time to analyze", registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.uploads = Counter("dialback_analyzer_upload_bytes", "Profile bytes uploaded", registry=self.registry)
