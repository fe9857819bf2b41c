"""`dialback demo`: a smoke round trip through the running local stack."""

from __future__ import annotations

import os
import time
import uuid

import typer
from rich.console import Console

from shared import tenancy
from shared.bus.kafka import Producer, consumer, ensure_topics
from shared.frames import data_record, decode_batch, encode_batch
from shared.objectstore.minio import MinioObjectStore

console = Console()


def _load_stack_env() -> None:
    from deploy.local.stack import Stack

    for k, v in Stack.default().env().items():
        os.environ.setdefault(k, v)


def smoke() -> None:
    """Produce a write batch on a tenant topic, consume it back, store and read it in MinIO."""
    _load_stack_env()
    from shared.config import CommonSettings

    s = CommonSettings()
    tenant = f"demo{uuid.uuid4().hex[:6]}"
    topic = tenancy.writes_topic(tenant)
    t0 = time.perf_counter()
    ensure_topics(s.kafka_bootstrap, [topic])
    batch = encode_batch([data_record("disk0", 1, time.time_ns(), 0, os.urandom(65536), compress=True)])
    d = Producer(s.kafka_bootstrap).send_sync(topic, batch, key=b"demo-group")
    console.print(f"produced 1 batch to [bold]{topic}[/] (partition {d.partition}, offset {d.offset})")
    c = consumer(s.kafka_bootstrap, f"demo-{tenant}")
    c.subscribe([topic])
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and not msg.error():
            got = msg.value()
    c.close()
    if got != batch:
        console.print("[red]the batch did not come back from Kafka[/]")
        raise typer.Exit(1)
    store = MinioObjectStore.from_settings(s)
    bucket = tenancy.tenant_bucket(tenant)
    store.ensure_bucket(bucket)
    store.put(bucket, "smoke/batch", got)
    same = store.get(bucket, "smoke/batch") == batch and decode_batch(got)[0].sequence == 1
    store.delete(bucket, "smoke/batch")
    if not same:
        console.print("[red]MinIO returned different bytes[/]")
        raise typer.Exit(1)
    console.print(f"stored and read back from MinIO bucket [bold]{bucket}[/]: identical "
                  f"({(time.perf_counter() - t0) * 1000:.0f} ms round trip)")


def register(app: typer.Typer) -> None:
    app.command("smoke")(smoke)
    app.command("demo")(smoke)
