"""Prometheus metrics of the retention service (served on 127.0.0.1 /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

SEGMENTS = Counter("dialback_retention_segments_total", "journal segments written")
SEGMENT_BYTES = Counter("dialback_retention_segment_bytes_total", "bytes of journal segments written")
RECORDS = Counter("dialback_retention_records_total", "write records made durable")
DUPLICATES = Counter("dialback_retention_duplicate_messages_total", "messages whose records were already held")
REFUSED = Counter("dialback_retention_refused_messages_total", "messages refused", ["reason"])
FLUSH_ERRORS = Counter("dialback_retention_flush_errors_total", "failed object-store writes (retried)")
FLUSH_SECONDS = Histogram("dialback_retention_flush_seconds", "time to make one segment durable")
LAG_SECONDS = Histogram("dialback_retention_recoverable_lag_seconds",
                        "agent write time of a segment's last record to its timeline entry being durable",
                        buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60))
OLDEST_BUFFER = Gauge("dialback_retention_oldest_buffer_seconds", "age of the oldest unflushed buffer")
GROUPS_BROKEN = Gauge("dialback_retention_groups_broken",
                      "groups whose journal lacks a sequence (commits held, resync requested)")
