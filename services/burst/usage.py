"""Burst's usage events, through shared.usage (Kafka in production, memory in tests).

Ids are derived from the operation, the server and the billed interval, so an
emission repeated after a crash is the same event and metering counts it once.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

from shared.usage import Meter, subject


class Emitter(Protocol):
    def emit(self, tenant: str, subj: str, meter, quantity: int, time=None, id=None, **attributes: str): ...


class BurstUsage:
    def __init__(self, emitter: Emitter | None) -> None:
        self.emitter = emitter

    def server_seconds(self, tenant: str, op_id: str, server: str, flavor: str, start: float, end: float) -> int:
        seconds = int(end) - int(start)
        if self.emitter is None or seconds <= 0:
            return 0
        self.emitter.emit(tenant, subject(tenant, "burst", op_id, "servers", server), Meter.BURST_SERVER_SECONDS,
                          seconds, time=datetime.fromtimestamp(end, timezone.utc),
                          id=f"burst:{tenant}:{op_id}:{server}:{int(start)}-{int(end)}", flavor=flavor)
        return seconds

    def drtest_seconds(self, tenant: str, op_id: str, start: float, end: float) -> int:
        seconds = int(end) - int(start)
        if self.emitter is None or seconds <= 0:
            return 0
        self.emitter.emit(tenant, subject(tenant, "drtests", op_id), Meter.DR_TEST_SECONDS, seconds,
                          time=datetime.fromtimestamp(end, timezone.utc), id=f"drtest:{tenant}:{op_id}")
        return seconds

    def flush(self) -> None:
        if self.emitter is not None:
            self.emitter.flush()
