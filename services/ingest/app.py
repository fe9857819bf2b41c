"""The ingest FastAPI app."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from services.ingest.api.errors import GapHTTPException, gap_handler
from services.ingest.api.routes import batches, groups, health
from services.ingest.bus import ControlLog, WritesLog
from services.ingest.config import IngestSettings
from services.ingest.metrics import IngestMetrics
from services.ingest.service import IngestService
from shared.auth import TenantAuth

log = logging.getLogger(__name__)


def kafka_logs(settings: IngestSettings) -> tuple[WritesLog, ControlLog]:
    from services.ingest.bus.kafka import KafkaControlLog, KafkaWritesLog, RenewingProducer
    from shared.bus.kafka import Producer

    timeout = settings.produce_timeout_s
    # librdkafka gives up on a message after message.timeout.ms; the wait in
    # send_sync is longer, so a failed send is final and never lands later.
    producer = RenewingProducer(
        lambda: Producer(settings.kafka_bootstrap, **{"message.timeout.ms": int(timeout * 1000)}))
    return (
        KafkaWritesLog(settings.kafka_bootstrap, producer, settings.writes_partitions, settings.replication,
                       timeout=timeout + 5),
        KafkaControlLog(settings.kafka_bootstrap, producer, settings.replication, timeout=timeout + 5),
    )


def create_app(settings: IngestSettings | None = None, *, writes: WritesLog | None = None,
               control: ControlLog | None = None, auth: TenantAuth | None = None,
               preload: bool = True) -> FastAPI:
    """Build the app; ``writes``/``control`` default to the Kafka adapters."""
    settings = settings or IngestSettings()
    if writes is None or control is None:
        kw, kc = kafka_logs(settings)
        writes, control = writes or kw, control or kc
    auth = auth or TenantAuth(settings.resolved_tenants_file())
    service = IngestService(writes, control, IngestMetrics())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        if preload:
            # Replaying every known tenant now makes the first request fast;
            # a tenant that fails here is loaded on its first request instead.
            await service.preload(auth.tenants())
        yield
        service.close()

    app = FastAPI(title="Dialback ingest", version="1", lifespan=lifespan)
    app.state.settings, app.state.service, app.state.auth = settings, service, auth
    app.add_exception_handler(GapHTTPException, gap_handler)
    for r in (health.router, groups.router, batches.router):
        app.include_router(r)
    return app
