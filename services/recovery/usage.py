"""Recovery's usage events, through shared.usage (Kafka in production, memory in tests, none when off).

* ``recovery.image_bytes``: one event per image built (quantity = image size);
  the id names the build, so a retried emission of the same build counts once.
* ``instant_access.seconds``: the time an export was open, one event per
  billed interval [start, end); the id is derived from the export and the
  interval, so re-emitting an interval after a crash or retry counts once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Protocol

from shared.usage import Meter, subject

log = logging.getLogger(__name__)


class Emitter(Protocol):
    def emit(self, tenant: str, subj: str, meter, quantity: int, time=None, id=None, **attributes: str): ...
    def flush(self, timeout: float = 10.0) -> None: ...


class ImageUsage:
    def __init__(self, emitter: Emitter | None) -> None:
        self.emitter = emitter

    def image_built(self, tenant: str, group: str, volume: str, sequence: int, size: int,
                    build_id: str | None = None) -> None:
        if self.emitter is None or not tenant or size <= 0:
            return
        build_id = build_id or uuid.uuid4().hex
        try:
            self.emitter.emit(tenant, subject(tenant, "groups", group, "volumes", volume), Meter.RECOVERY_IMAGE_BYTES,
                              size, id=f"recovery-image:{tenant}:{group}:{sequence}:{volume}:{build_id}")
        except Exception:  # billing must not fail a recovery that succeeded; the log says what was lost
            log.exception("could not emit recovery.image_bytes for %s/%s", tenant, group)

    def export_seconds(self, tenant: str, group: str, export_id: str, start: float, end: float) -> int:
        """Emit the whole seconds of [start, end) (wall clock); returns the seconds billed."""
        seconds = int(end) - int(start)
        if self.emitter is None or seconds <= 0:
            return 0
        self.emitter.emit(tenant, subject(tenant, "groups", group, "exports", export_id),
                          Meter.INSTANT_ACCESS_SECONDS, seconds, time=datetime.fromtimestamp(end, timezone.utc),
                          id=f"instant:{tenant}:{export_id}:{int(start)}-{int(end)}")
        return seconds

    def flush(self) -> None:
        if self.emitter is not None:
            self.emitter.flush()
