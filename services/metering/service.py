"""Wiring: the metering process runs the aggregation loop, follows the billing feed and licences
for the API, runs the purge job, and serves HTTP on loopback."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from shared.objectstore.factory import store_from_settings
from shared.auth import TenantAuth
from shared.bus.kafka import Producer
from shared.usage import Feature, UsageEmitter
from services.metering.app import create_app
from services.metering.config import MeteringSettings
from services.metering.feed import BillingFeed
from shared.bus.tail import Tail
from shared.licences import Licence, LicenceBook
from services.metering.runner import MeteringRunner, ensure_metering_topics

log = logging.getLogger(__name__)


class LicenceSwitcher:
    """Publishes a licence change (whole history, compacted topic) and waits for Kafka's ack."""

    def __init__(self, s: MeteringSettings, book: LicenceBook, clock: Callable[[], float] = time.time) -> None:
        self._p = Producer(s.kafka_bootstrap)
        self.topic, self.book, self.clock = s.licensing_topic, book, clock
        self._lock = threading.Lock()

    def __call__(self, tenant: str, feature: Feature, group: str | None, enabled: bool) -> Licence:
        with self._lock:  # read-modify-write of one history: one writer at a time in this process
            lic = self.book.switch(tenant, feature, group, enabled, self.clock())
            self._p.send_sync(self.topic, lic.to_json(), key=lic.key.encode())
            self.book.apply_record(lic.key, lic.to_json())
            return lic


class MeteringService:
    def __init__(self, s: MeteringSettings, clock: Callable[[], float] = time.time) -> None:
        self.s, self.clock = s, clock
        self.stop = threading.Event()
        self.feed, self.book = BillingFeed(), LicenceBook()
        self.runner = MeteringRunner(s, clock)
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []

    def _loop(self, name: str, fn, interval: float) -> None:
        def body():
            while not self.stop.is_set():
                try:
                    fn()
                except Exception as err:  # a thread that dies silently would stop billing unnoticed
                    log.exception("%s failed", name)
                    self.errors.append(f"{name}: {err}")
                    if name == "aggregator":
                        self.stop.set()
                        return
                    self.stop.wait(5)
                    continue
                if interval:
                    self.stop.wait(interval)
        t = threading.Thread(target=body, name=f"metering-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def start(self) -> None:
        ensure_metering_topics(self.s)
        self.runner.start()
        feed_tail = Tail(self.s.kafka_bootstrap, self.s.billing_topic, self.feed.apply_record)
        lic_tail = Tail(self.s.kafka_bootstrap, self.s.licensing_topic, self.book.apply_record)
        self._loop("aggregator", self.runner.step, 0)
        self._loop("feed", lambda: feed_tail.poll(0.5), 0)
        self._loop("licences", lambda: lic_tail.poll(0.5), 0)
        if self.s.metering_purge:
            from services.metering.purge import PurgeJob

            job = PurgeJob(store_from_settings(self.s), self.book,
                           UsageEmitter(self.s.kafka_bootstrap, "/dialback/metering/purge", self.s.usage_topic),
                           self.s.metering_grace_s, self.clock, self.s.bucket_prefix)
            self._loop("purge", job.run_once, self.s.metering_purge_interval_s)

    def health(self) -> dict:
        alive = all(t.is_alive() for t in self._threads)
        return {"threads_alive": alive, "errors": self.errors[-5:], "batches": self.runner.batches,
                "closed_through": self.runner.aggregator.closed_through * 3600}

    def app(self):
        return create_app(self.feed, self.book, TenantAuth(), self._admin_token(),
                          LicenceSwitcher(self.s, self.book, self.clock), self.health)

    def _admin_token(self) -> str | None:
        tok = self.s.metering_admin_token
        return tok.get_secret_value() if tok is not None and tok.get_secret_value() else None

    def serve(self) -> None:
        import uvicorn

        tls = self.s.uvicorn_tls_or_exit(self.s.metering_host)
        self.start()
        server = uvicorn.Server(uvicorn.Config(self.app(), host=self.s.metering_host, port=self.s.metering_port,
                                               log_level=self.s.log_level.lower(), **tls))

        def watch():
            # The aggregator stopping (e.g. fenced by a newer instance) must stop the process too,
            # or the API would keep serving a feed nobody updates.
            self.stop.wait()
            server.should_exit = True

        threading.Thread(target=watch, name="metering-watch", daemon=True).start()
        try:
            server.run()
        finally:
            self.stop.set()
        if self.errors:
            raise SystemExit(f"metering stopped: {self.errors[-1]}")
