"""The ingest FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from services.ingest.api.errors import GapHTTPException, IncarnationHTTPException, gap_handler, incarnation_handler
from services.ingest.api.routes import batches, groups, health
from services.ingest.bus import ControlLog, WritesLog
from services.ingest.config import IngestSettings
from services.ingest.inflight import InflightBytes
from services.ingest.metrics import IngestMetrics
from services.ingest.service import IngestService
from services.ingest.transport import TransportKeys
from services.ingest.usage import SOURCE, IngestUsage
from shared.auth import TenantAuth
from shared.crypto.bus import BusSeal
from shared.licences import AllOn, LicenceView, LicenceWatch

log = logging.getLogger(__name__)


def kafka_logs(settings: IngestSettings) -> tuple[WritesLog, ControlLog]:
    from services.ingest.bus.kafka import KafkaControlLog, KafkaWritesLog, RenewingProducer
    from shared.bus.kafka import Producer

    timeout = settings.produce_timeout_s

    def producer(linger_ms: int) -> RenewingProducer:
        # librdkafka gives up on a message after message.timeout.ms; the wait in
        # send_sync is longer, so a failed send is final and never lands later.
        return RenewingProducer(lambda: Producer(settings.kafka_bootstrap, **{
            "message.timeout.ms": int(timeout * 1000), "linger.ms": linger_ms}))

    # Two producers: a body's writes are many large records that gain from fuller requests
    # (a longer linger), its control event is one small record the answer waits for.
    return (
        KafkaWritesLog(settings.kafka_bootstrap, producer(settings.ingest_writes_linger_ms), settings.writes_partitions,
                       settings.replication, timeout=timeout + 5),
        KafkaControlLog(settings.kafka_bootstrap, producer(settings.ingest_control_linger_ms), settings.replication,
                        timeout=timeout + 5),
    )


def kafka_usage(settings: IngestSettings) -> IngestUsage:
    from shared.bus.kafka import ensure_topics
    from shared.usage import UsageEmitter

    return IngestUsage(UsageEmitter(settings.kafka_bootstrap, SOURCE, settings.usage_topic),
                       lambda: ensure_topics(settings.kafka_bootstrap, [settings.usage_topic],
                                             replication=settings.replication))


def create_app(settings: IngestSettings | None = None, *, writes: WritesLog | None = None,
               control: ControlLog | None = None, auth: TenantAuth | None = None,
               preload: bool = True, keys: TransportKeys | None = None,
               usage: IngestUsage | None = None, licences: LicenceView | None = None) -> FastAPI:
    """Build the app; ``writes``/``control`` default to the Kafka adapters, ``keys`` to the
    keyring of DIALBACK_MASTER_KEY_FILE, ``usage`` to Kafka when ingest uses Kafka (DIALBACK_INGEST_USAGE),
    ``licences`` to the licensing topic when ingest uses Kafka (else every group is licensed)."""
    from shared.objectstore.factory import keyring_from_env

    settings = settings or IngestSettings()
    on_kafka = writes is None or control is None
    if on_kafka:
        kw, kc = kafka_logs(settings)
        writes, control = writes or kw, control or kc
    if usage is None and (settings.ingest_usage or (settings.ingest_usage is None and on_kafka)):
        usage = kafka_usage(settings)
    auth = auth or TenantAuth(settings.resolved_tenants_file())
    if licences is None:
        licences = LicenceWatch(settings.kafka_bootstrap, settings.licensing_topic) if on_kafka else AllOn()
    keys = keys or TransportKeys(keyring_from_env())
    # With a keyring, records rest in Kafka sealed under the tenant's bus key (docs/encryption.md, "Kafka").
    writes.use_seal(BusSeal(keys.ring, create=True))
    service = IngestService(writes, control, IngestMetrics(), keys=keys, usage=usage,
                            reorder_wait_s=settings.ingest_reorder_wait_s,
                            max_volume_bytes=settings.ingest_max_volume_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        if isinstance(licences, LicenceWatch):
            licences.start()
        if preload:
            # Replaying every known tenant now makes the first request fast;
            # a tenant that fails here is loaded on its first request instead.
            await service.preload(auth.tenants())
        follower = (asyncio.ensure_future(service.follow_control(settings.ingest_control_follow_s))
                    if settings.ingest_control_follow_s > 0 else None)
        yield
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        service.close()
        if isinstance(licences, LicenceWatch):
            licences.close()

    app = FastAPI(title="Dialback ingest", version="1", lifespan=lifespan)
    app.state.settings, app.state.service, app.state.auth = settings, service, auth
    app.state.inflight = InflightBytes(*settings.inflight_caps())
    app.state.licences = licences
    app.add_exception_handler(GapHTTPException, gap_handler)
    app.add_exception_handler(IncarnationHTTPException, incarnation_handler)
    for r in (health.router, groups.router, batches.router):
        app.include_router(r)
    return app
