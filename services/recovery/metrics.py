"""Prometheus metrics of the recovery service."""

from prometheus_client import Counter, Histogram

RECOVERY_SECONDS = Histogram("dialback_recovery_seconds", "time to synthesize (and upload) images", ["target"],
                             buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
RECOVERED_BYTES = Counter("dialback_recovery_image_bytes_total", "bytes of images produced")
REFUSED = Counter("dialback_recovery_refused_total", "requests refused", ["status"])
