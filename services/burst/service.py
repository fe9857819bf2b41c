"""The running service: an engine, a worker pool that drives operations, and a ticker.

Requests only record events and hand the operation to a worker; the ticker
drives whatever is due (operations left unfinished by a crash, expired time
limits, periodic usage), so a restarted service picks up where it stopped.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from services.burst.engine import Engine
from services.burst.metrics import BurstMetrics

log = logging.getLogger("dialback.burst")


class BurstService:
    def __init__(self, engine: Engine, tick_seconds: float = 5.0, workers: int = 4) -> None:
        self.engine = engine
        self.metrics = BurstMetrics()
        self.tick_seconds = tick_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="burst-op")
        self._queued: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def schedule(self, tenant: str, op_id: str) -> None:
        with self._lock:
            if (tenant, op_id) in self._queued:
                return
            self._queued.add((tenant, op_id))
        self._pool.submit(self._run, tenant, op_id)

    def _run(self, tenant: str, op_id: str) -> None:
        try:
            st = self.engine.drive(tenant, op_id)
            if st.spec is not None and st.status in ("running", "cleaned", "failed"):
                self.metrics.finished.labels(st.spec.kind.value, st.status).inc()
                if st.status == "running" and "to_running" in st.timings:
                    self.metrics.to_running.labels(st.spec.kind.value).observe(st.timings["to_running"])
        except Exception:  # noqa: BLE001 - the ticker retries; the log says why
            log.exception("driving %s/%s failed; will retry", tenant, op_id)
        finally:
            with self._lock:
                self._queued.discard((tenant, op_id))

    def tick(self) -> None:
        try:
            for tenant, op_id in self.engine.due():
                self.schedule(tenant, op_id)
            self.metrics.active.set(sum(1 for t, o in self.engine.events.operations()
                                        if not self.engine.state(t, o).terminal))
        except Exception:  # noqa: BLE001
            log.exception("burst tick failed")

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(self.tick_seconds)

        self._ticker = threading.Thread(target=loop, name="burst-ticker", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.usage.flush()
