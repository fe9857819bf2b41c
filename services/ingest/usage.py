"""``ingest.bytes`` usage events for every batch ingest newly acknowledges.

Quantity: logical payload bytes (uncompressed DATA lengths) of the records the
batch newly acknowledged. Id: a UUIDv5 of (tenant, group, first, last), and
acknowledged ranges of a group never overlap, so a duplicate resend (nothing
newly acknowledged) emits nothing and a re-emitted event is counted once by
metering. Emitted after the acknowledgement: a crash in between can lose an
event (under-count), never count one twice. Failures are logged, never fail
the batch (it is already acknowledged).
"""

from __future__ import annotations

import logging
import threading
import uuid

from shared.usage import Meter, MemoryEmitter, subject

log = logging.getLogger(__name__)

SOURCE = "/dialback/ingest"
_NS = uuid.UUID("6f1d3c1e-5b8a-4c52-9a57-2b8f0d0f4e11")


def event_id(tenant: str, group: str, first: int, last: int) -> str:
    return str(uuid.uuid5(_NS, f"ingest.bytes/{tenant}/{group}/{first}-{last}"))


class IngestUsage:
    """Wraps an emitter (UsageEmitter or MemoryEmitter); ``ensure`` creates the topic once."""

    def __init__(self, emitter: MemoryEmitter, ensure_topic=None) -> None:
        self.emitter = emitter
        self._ensure_topic = ensure_topic
        self._ensured = ensure_topic is None
        self._lock = threading.Lock()

    def ensure(self) -> None:
        with self._lock:
            if not self._ensured:
                self._ensure_topic()
                self._ensured = True

    def batch_acked(self, tenant: str, group: str, first: int, last: int, payload_bytes: int) -> None:
        try:
            self.emitter.emit(tenant, subject(tenant, "groups", group), Meter.INGEST_BYTES, payload_bytes,
                              id=event_id(tenant, group, first, last))
        except Exception as err:  # noqa: BLE001 - metering must never fail an acknowledged batch
            log.error("ingest.bytes event for %s/%s %d-%d not emitted: %s", tenant, group, first, last, err)

    def close(self) -> None:
        try:
            self.emitter.flush()
        except Exception as err:  # noqa: BLE001
            log.error("usage events not flushed at shutdown: %s", err)
