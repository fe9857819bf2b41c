"""Licences on real Kafka and MinIO: switched off -> meters stop from the next hour, data purged
after the grace period (and the purge metered); switched on -> one licence-hour line per hour."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from shared.bus.tail import replay
from services.metering.lines import BillingLine
from shared.usage import Meter, UsageEmitter, new_event, subject

pytestmark = pytest.mark.integration


def read(m, topic_env):
    out = []
    replay(m.env["DIALBACK_KAFKA_BOOTSTRAP"], m.env[topic_env], lambda k, v: out.append(v))
    return out


def test_switch_off_stops_meters_next_hour_and_purges_after_grace(metering_factory, stack_env, minio_store):
    tenant = "lic-" + uuid.uuid4().hex[:8]
    m = metering_factory([tenant], {**stack_env, "DIALBACK_METERING_PURGE": "true",
                                    "DIALBACK_METERING_GRACE_S": "2", "DIALBACK_METERING_PURGE_INTERVAL_S": "1"})
    bucket = f"dialback-{tenant}"
    minio_store.ensure_bucket(bucket)
    g1_bytes = 0
    for i in range(30):
        data = bytes([i]) * (1000 + i)
        minio_store.put(bucket, f"groups/g1/journal/{i:020d}-{i:020d}.seg", data)
        g1_bytes += len(data)
    minio_store.put(bucket, "groups/g2/manifest.json", b"{}")
    m.start()
    token = m.tokens[tenant]
    # the tenant's operator may not switch its own protection off; the provider may
    assert m.put(f"/v1/tenants/{tenant}/licences/protection", token, {"enabled": False}).status_code == 403
    r = m.put(f"/v1/tenants/{tenant}/licences/protection", m.admin(), {"enabled": False, "group": "g1"})
    assert r.status_code == 200 and r.json()["enabled"] is False
    off_at = r.json()["changes"][-1]["at"]
    r = m.put(f"/v1/tenants/{tenant}/licences/instant_access", m.admin(), {"enabled": True})
    assert r.status_code == 200
    hour = int(off_at // 3600)  # the hour it was switched off in: still metered
    time.sleep(1.5)  # the aggregator follows the licensing topic; give it the change first

    def t(h, minute=1):
        return datetime.fromtimestamp(h * 3600 + minute * 60, timezone.utc)

    em = UsageEmitter(m.env["DIALBACK_KAFKA_BOOTSTRAP"], "/dialback/ingest", m.env["DIALBACK_USAGE_TOPIC"])
    g1, g2 = subject(tenant, "groups", "g1"), subject(tenant, "groups", "g2")
    em.emit(tenant, g1, Meter.INGEST_BYTES, 111, time=datetime.fromtimestamp(off_at, timezone.utc))  # same hour: on
    em.emit(tenant, g1, Meter.INGEST_BYTES, 222, time=t(hour + 1))                 # next hour: off
    em.emit(tenant, g2, Meter.INGEST_BYTES, 333, time=t(hour + 1))                 # other group: on
    em.flush()
    deadline = time.monotonic() + 60
    while list(minio_store.list(bucket, "groups/g1/")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(minio_store.list(bucket, "groups/g1/")) == []
    assert [o.key for o in minio_store.list(bucket)] == ["groups/g2/manifest.json"]
    time.sleep(1)
    em.emit(tenant, g2, Meter.INGEST_BYTES, 1, time=t(hour + 4))  # closes hours up to hour + 2
    em.flush()

    deadline = time.monotonic() + 60
    while True:
        lines = [BillingLine.from_json(v) for v in read(m, "DIALBACK_BILLING_TOPIC")]
        if any(ln.meter == "data.purged_bytes" for ln in lines) and any(ln.type == "licence" for ln in lines) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    got = {(ln.meter, ln.subject, ln.hour): ln.quantity for ln in lines if ln.type == "usage"}
    assert got[("ingest.bytes", g1, hour)] == 111
    assert ("ingest.bytes", g1, hour + 1) not in got
    assert got[("ingest.bytes", g2, hour + 1)] == 333
    purged = sum(ln.quantity for ln in lines if ln.meter == "data.purged_bytes")
    assert purged == g1_bytes  # every deleted byte metered, once
    licence = sorted((ln.meter, ln.hour, ln.quantity) for ln in lines if ln.type == "licence")
    assert licence == [("license.instant_access.hours", h, 1) for h in (hour, hour + 1, hour + 2)]
    dlq = [json.loads(v) for v in read(m, "DIALBACK_DLQ_TOPIC")]
    assert [d["reason"] for d in dlq] == ["not licensed"] and '"quantity":222' in dlq[0]["event"]
    lics = m.get(f"/v1/tenants/{tenant}/licences", token).json()["licences"]
    assert sorted((x["feature"], x["group"], x["enabled"]) for x in lics) == [
        ("instant_access", None, True), ("protection", "g1", False)]


def test_cli_switches_licences_and_prints_usage(metering_factory):
    from typer.testing import CliRunner

    import typer

    from services.metering.cli import register

    app = typer.Typer()
    register(app)
    tenant = "cli-" + uuid.uuid4().hex[:8]
    m = metering_factory([tenant])
    m.start()
    run = CliRunner().invoke
    common = ["--url", m.url, "--token", m.tokens[tenant]]
    r = run(app, ["license", "off", tenant, "burst", "--group", "g1", *common])
    assert r.exit_code == 1 and "provider credential" in r.output  # the tenant's operator token
    r = run(app, ["license", "off", tenant, "burst", "--group", "g1", "--url", m.url, "--token", m.admin()])
    assert r.exit_code == 0, r.output
    assert "burst off for group g1" in r.output
    lics = m.get(f"/v1/tenants/{tenant}/licences", m.tokens[tenant]).json()["licences"]
    assert [(x["feature"], x["group"], x["enabled"]) for x in lics] == [("burst", "g1", False)]

    em = UsageEmitter(m.env["DIALBACK_KAFKA_BOOTSTRAP"], "/dialback/ingest", m.env["DIALBACK_USAGE_TOPIC"])
    base = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
    em.emit(tenant, subject(tenant, "groups", "g7"), Meter.INGEST_BYTES, 4242, time=base)
    em.emit(tenant, subject(tenant, "groups", "g7"), Meter.INGEST_BYTES, 1, time=base.replace(hour=13))
    em.flush()
    args = ["usage", tenant, "--from", "2026-11-20T00:00:00+00:00", "--to", "2026-11-21T00:00:00+00:00",
            "--granularity", "day", "--csv", *common]
    deadline = time.monotonic() + 60
    while True:
        r = run(app, args)
        if "4242" in r.output or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].startswith(f"{tenant},ingest.bytes,byte,,,2026-11-20T00:00:00Z")
    assert ",4242," in r.output.splitlines()[1]
    bad = run(app, ["usage", "globex", "--from", "2026-11-20T00:00:00+00:00", *common])
    assert bad.exit_code == 1 and "404" in bad.output
