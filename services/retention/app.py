"""The faust app: agents on the tenants' writes and control topics.

Durability rule: a writes message is acked (so its offset may be committed)
only after the segment and timeline entry holding its records are durable.
The agent iterates ``stream.noack()`` and acks through
:class:`services.retention.acks.OrderedAcks`; ``stream_wait_empty`` is off
because buffered, unacked events are normal and are simply redelivered
after a rebalance or crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.retention.config import RetentionSettings
from services.retention.job import run_tenant
from services.retention.journaler import Journaler
from services.retention.manifests import ManifestWriter
from services.retention.processor import Processor
from services.retention.topics import discover
from services.retention.usage_events import SOURCE, UsageSampler
from shared import broken
from shared.bus.security import kafka_security
from shared.crypto.bus import BusSeal
from shared.objectstore import ObjectStore, ObjectStoreError
from shared.objectstore.factory import keyring_from_env
from shared.tenancy import control_topic, tenant_bucket, tenant_of_topic

log = logging.getLogger(__name__)

RESTART = {"requested": False}


def usage_sampler(settings: RetentionSettings) -> UsageSampler | None:
    """The storage meters' sampler when DIALBACK_RETENTION_USAGE is on (docs/storage.md)."""
    if not settings.retention_usage:
        return None
    from shared.usage import UsageEmitter

    emitter = UsageEmitter(settings.kafka_bootstrap, SOURCE, settings.usage_topic)
    return UsageSampler(emitter, settings.retention_usage_catchup_hours)


def control_notifier(bootstrap: str):
    """A blocking sender of GroupBroken/GroupRepaired events (shared.broken) to a tenant's control topic."""
    from shared.bus.kafka import Producer

    producer: list[Producer] = []

    def notify(tenant: str, group: str, event: dict) -> None:
        if not producer:
            producer.append(Producer(bootstrap))
        producer[0].send_sync(control_topic(tenant), broken.encode_event(event), key=broken.event_key(group))

    return notify


def build_app(settings: RetentionSettings, store: ObjectStore, writes: list[str],
              control: list[str]) -> tuple[faust.App, Processor]:
    brokers = [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")]
    app = faust.App(
        settings.retention_app_id,
        broker=brokers,
        broker_credentials=kafka_security().faust_credentials(),  # DIALBACK_KAFKA_SECURITY_PROTOCOL etc.
        store="memory://",
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,     # the leader topic would need auto-creation
        stream_wait_empty=False,       # unacked (buffered) events are expected
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.retention_session_timeout,
        broker_heartbeat_interval=max(1.0, settings.retention_session_timeout / 4),
        broker_commit_interval=0.5,
        # A batch is up to 1 MiB; faust's 1 MiB default fetches one message per round trip.
        consumer_max_fetch_size=settings.retention_fetch_bytes,
        # Every record carries its own CRC32C (shared.frames), checked when the journaler
        # decodes it; Kafka's batch CRC over the same bytes would be a second pass (~0.7 ms/MB).
        broker_check_crcs=False,
        web_enabled=settings.retention_web_port > 0,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.retention_web_port or 6066,
        # faust's /router and /table pages answer anyone on the host with every tenant's
        # topic names; retention routes no table keys between workers, so they are off.
        web_router_enabled=False,
        web_tables_enabled=False,
        datadir=str(settings.home / "retention"),
    )
    journaler = Journaler(store, settings.bucket_prefix, settings.retention_segment_bytes,
                          settings.retention_segment_age, settings.retention_compress)
    proc = Processor(journaler, ack=lambda event: event.ack(), max_inflight=settings.retention_inflight_segments,
                     notify=control_notifier(settings.kafka_bootstrap), bus=BusSeal(keyring_from_env()))
    manifests = ManifestWriter(store, settings.bucket_prefix)
    known = (sorted(writes), sorted(control))

    writes_topic = app.topic(*writes, key_type=bytes, value_type=bytes)

    @app.agent(writes_topic)
    async def journal(stream):
        async for event in stream.noack().events():
            msg = event.message
            await proc.on_message(msg.topic, msg.tp, msg.key, msg.value, event, msg.headers)

    if control:
        control_topic = app.topic(*control, key_type=bytes, value_type=bytes)

        @app.agent(control_topic)
        async def registry(stream):
            # Default acks: faust acks an event when the loop asks for the
            # next one, i.e. after the manifest put below returned.
            async for event in stream.events():
                tenant = tenant_of_topic(event.message.topic)
                while True:
                    try:
                        await asyncio.to_thread(manifests.handle, tenant, event.message.value)
                        break
                    except ObjectStoreError as err:
                        log.error("manifest write failed (%s); retrying", err)
                        await asyncio.sleep(1.0)

    @app.timer(interval=max(0.05, settings.retention_segment_age / 5))
    async def flush_by_age():
        await proc.flush_due(wait=False)  # uploads run in the background, acks follow durability

    @app.timer(interval=settings.retention_rescan_interval)
    async def rescan():
        try:
            now = await asyncio.to_thread(discover, settings.kafka_bootstrap, settings.tenants_path())
        except Exception as err:
            log.warning("tenant rescan failed: %s", err)
            return
        if (sorted(now[0]), sorted(now[1])) != known:
            log.info("tenant topics changed (%s -> %s); flushing and restarting to resubscribe", known, now)
            await proc.flush_all()
            RESTART["requested"] = True
            os.kill(os.getpid(), signal.SIGTERM)

    if settings.retention_job_interval > 0:
        tenants = sorted({tenant_of_topic(t) for t in writes})
        sampler = usage_sampler(settings)

        @app.timer(interval=settings.retention_job_interval)
        async def retention_job():
            # Rollup + GC (docs/storage.md); blocking object I/O, so in a thread. A per-bucket lock
            # serializes runs in this process only: with several retention instances, leave the job on
            # in exactly one (DIALBACK_RETENTION_JOB_INTERVAL=0 elsewhere).
            for tenant in tenants:
                try:
                    res = await asyncio.to_thread(run_tenant, store, tenant_bucket(tenant, settings.bucket_prefix),
                                                  None, settings.retention_chunk_size, usage=sampler, tenant=tenant,
                                                  chunk_grace_s=settings.chunk_grace_s())
                    log.info("retention job %s: %s", tenant, res)
                    if res.usage_error:
                        log.error("usage events for tenant %s not sent (%s); resent next run", tenant,
                                  res.usage_error)
                except Exception as err:
                    log.error("retention job for tenant %s failed (%s); retried next interval", tenant, err)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs):
        proc.revoke(set(revoked))
        await proc.settle()  # aborted uploads finish their running PUT, write nothing more

    @app.page("/healthz")
    async def healthz(web, request):
        ok = proc.last_flush_error is None
        return web.json({"status": "ok" if ok else "degraded", "error": proc.last_flush_error,
                         "pending_acks": proc.acks.pending(), "oldest_buffer_s": proc.j.oldest_age(),
                         # Counts only: this page needs no credential, so it names no tenant or group
                         # (which group is broken: its broken mark, GroupBroken event, recovery's points).
                         "groups_broken": len(proc.gaps.status()),
                         "topics": len(writes)}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web, request):
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app, proc
