"""Prometheus metrics of the metering service (module level: one set per process)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("dialback_metering_events_total", "usage events consumed, by outcome", ["outcome"])
REJECTS = Counter("dialback_metering_rejects_total", "usage events sent to the dead-letter topic", ["reason"])
LINES = Counter("dialback_metering_lines_total", "billing lines published", ["type"])
BATCH = Histogram("dialback_metering_batch_seconds", "time to aggregate and commit one batch",
                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CLOSED_THROUGH = Gauge("dialback_metering_closed_through_seconds", "every hour before this time is published")
OPEN_BUCKETS = Gauge("dialback_metering_buckets", "aggregation buckets held in memory")
PURGED = Counter("dialback_metering_purged_bytes_total", "bytes deleted by the purge job")
