"""Metering throughput and end-to-end delay on a real Kafka.

    .venv/bin/python bench/metering.py [--bootstrap HOST:PORT] [--events 300000] [--rate 20000] [--seconds 15]

Without --bootstrap a throwaway Kafka 3.9 is started on loopback (deploy/local). Prints JSON.

Phase 1 (throughput): ``--events`` usage events are produced first, then the
metering loop (the same MeteringRunner the service runs: parse, validate,
dedupe, aggregate, one Kafka transaction per batch with lines, changelog and
offsets) drains them; events/s = events / time to drain. Target >= 20,000/s.

Phase 2 (delay at that rate): events are produced at ``--rate`` for
``--seconds``; event time is compressed (1 s of wall clock = 1 hour of event
time, lateness 0) so an hour closes every second. Reported:

* ``hour_close_delay``: from producing the first event of hour h+1 (which
  closes hour h) to hour h's billing line being readable (read_committed);
* ``late_event_delay``: from producing a late event (10 per second, each for
  an already published hour) to its correction line being readable: the
  delay from one event to its billing line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, Producer  # noqa: E402

from shared.bus.kafka import client_config, ensure_topics, producer_config  # noqa: E402
from services.metering.config import MeteringSettings  # noqa: E402
from services.metering.lines import BillingLine  # noqa: E402
from services.metering.runner import MeteringRunner  # noqa: E402

BASE_HOUR = 480000  # an arbitrary past hour index (2024-10-04)
TEMPLATE = ('{"specversion":"1.0","type":"io.dialback.usage.v1","id":"%s","source":"/bench",'
            '"time":"%s","subject":"tenants/%s/groups/g%d","tenant":"%s","datacontenttype":"application/json",'
            '"data":{"meter":"ingest.bytes","quantity":%d,"unit":"byte"}}')


_ISO: dict[int, str] = {}
_RUN = uuid.uuid4().hex[:12]
_SEQ = [0]
TENANTS = [f"tenant-{i:02d}" for i in range(50)]


def iso(t: float) -> str:
    sec = int(t)
    s = _ISO.get(sec)
    if s is None:  # cached: the generator must reach the target rate on a shared core
        s = _ISO[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + "Z"
    return s


def payload(rng: random.Random, t: float, tenant: str | None = None, group: int | None = None) -> bytes:
    tenant = tenant or TENANTS[int(rng.random() * 50)]
    _SEQ[0] += 1
    return (TEMPLATE % (f"{_RUN}-{_SEQ[0]}", iso(t), tenant, int(rng.random() * 10) if group is None else group,
                        tenant, 1 + int(rng.random() * 1048575))).encode()


def settings(bootstrap: str, sfx: str) -> MeteringSettings:
    return MeteringSettings(
        kafka_bootstrap=bootstrap, usage_topic=f"bench.usage.{sfx}", billing_topic=f"bench.billing.{sfx}",
        dlq_topic=f"bench.dlq.{sfx}", metering_state_topic=f"bench.state.{sfx}",
        licensing_topic=f"bench.licensing.{sfx}", metering_group=f"bench-{sfx}",
        metering_transactional_id=f"bench-{sfx}", metering_wall_clock=False, metering_lateness_s=0,
        metering_horizon_s=10 * 24 * 3600, metering_batch_max=20000, metering_poll_s=0.05, metering_purge=False)


def phase_throughput(s: MeteringSettings, n: int) -> dict:
    rng = random.Random(1)
    p = Producer(producer_config(s.kafka_bootstrap, **{"linger.ms": 20, "batch.size": 1 << 20}))
    for i in range(n):
        t = (BASE_HOUR + i * 24 // n) * 3600 + rng.uniform(0, 3599)  # 24 hours, in order
        while True:
            try:
                p.produce(s.usage_topic, payload(rng, t), key=b"k%d" % (i % 64))
                break
            except BufferError:
                p.poll(0.01)
    p.flush(120)
    runner = MeteringRunner(s)
    runner.start()
    consumed, t0, c0, deadline = 0, None, None, time.monotonic() + 600
    while consumed < n and time.monotonic() < deadline:
        before, cbefore = time.perf_counter(), time.process_time()
        out = runner.step()
        if out.accepted and t0 is None:
            t0, c0 = before, cbefore  # the clock starts with the first batch that held events
        consumed += out.accepted + out.duplicates + len(out.rejects)
    runner.settle()  # the last transaction is committed too
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    runner.close()
    # cpu: this process's CPU time (Python + librdkafka threads): the rate a free core would reach,
    # whatever else the machine runs at the same moment
    return {"events": n, "aggregated": consumed, "seconds": round(elapsed, 3),
            "events_per_second": round(consumed / elapsed), "cpu_seconds": round(cpu, 3),
            "events_per_cpu_second": round(consumed / cpu), "transactions": runner.batches,
}


def phase_delay(s: MeteringSettings, rate: int, seconds: float) -> dict:
    rng = random.Random(2)
    runner = MeteringRunner(s)
    runner.start()
    stop = threading.Event()
    line_seen: dict[int, float] = {}
    probe_seen: dict[str, float] = {}

    def run_metering():
        while not stop.is_set():
            runner.step()

    def read_feed():
        c = Consumer({**client_config(s.kafka_bootstrap), "group.id": f"bench-feed-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                      "enable.auto.commit": False})
        c.subscribe([s.billing_topic])
        while not stop.is_set():
            for m in c.consume(1000, timeout=0.05):
                if m.error():
                    continue
                now = time.monotonic()
                ln = BillingLine.from_json(m.value())
                if ln.type == "usage":
                    line_seen.setdefault(ln.hour, now)
                elif ln.tenant == "probe":
                    probe_seen.setdefault(ln.subject, now)
        c.close()

    threads = [threading.Thread(target=run_metering), threading.Thread(target=read_feed)]
    for t in threads:
        t.start()
    # the load generator is another process (as emitting services are): it must not share our GIL
    q: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    gen = multiprocessing.get_context("spawn").Process(target=produce_paced, args=(s, rate, seconds, q))
    gen.start()
    sent, produced_for, close_sent, probe_sent = q.get(timeout=seconds + 120)
    gen.join(30)
    time.sleep(3)  # let the tail of the stream arrive
    stop.set()
    for t in threads:
        t.join(30)
    runner.close()
    return report(rate, sent, produced_for, close_sent, probe_sent, line_seen, probe_seen)


def produce_paced(s: MeteringSettings, rate: int, seconds: float, q) -> None:
    """Produce at ``rate`` events/s for ``seconds``; 1 s of wall clock = 1 hour of event time."""
    rng = random.Random(2)
    close_sent: dict[int, float] = {}     # hour h -> when the first event of h+1 was produced
    probe_sent: dict[str, float] = {}     # subject -> when its late event was produced
    p = Producer(producer_config(s.kafka_bootstrap, **{"linger.ms": 2}))
    start = time.monotonic()
    start_hour = BASE_HOUR + 1000
    sent, last_hour, probes = 0, None, 20  # probes start after 2 s, when hours are published
    tick = 0.005
    while (elapsed := time.monotonic() - start) < seconds:
        hour = start_hour + int(elapsed)
        if hour != last_hour and last_hour is not None:
            close_sent.setdefault(last_hour, time.monotonic())
        last_hour = hour
        due = int(elapsed * rate) - sent
        for _ in range(max(0, due)):
            t = hour * 3600 + min(3599.0, (elapsed % 1) * 3600 + rng.random() * 30)
            while True:
                try:
                    p.produce(s.usage_topic, payload(rng, t), key=b"k%d" % (sent % 64))
                    break
                except BufferError:
                    p.poll(0.005)
            sent += 1
        while elapsed * 10 >= probes + 1 and hour - start_hour >= 2:
            grp = 1000 + probes
            p.produce(s.usage_topic, payload(rng, (hour - 2) * 3600 + 60, "probe", grp), key=b"probe")
            probe_sent[f"tenants/probe/groups/g{grp}"] = time.monotonic()
            probes += 1
        p.poll(0)
        time.sleep(tick)
    p.flush(60)
    q.put((sent, time.monotonic() - start, close_sent, probe_sent))


def report(rate, sent, produced_for, close_sent, probe_sent, line_seen, probe_seen) -> dict:
    def stats(pairs):
        vals = sorted(v for v in pairs if v is not None)
        if not vals:
            return {"samples": 0}
        return {"samples": len(vals), "p50_ms": round(statistics.median(vals) * 1000, 1),
                "p95_ms": round(vals[max(0, -(-95 * len(vals) // 100) - 1)] * 1000, 1), "max_ms": round(vals[-1] * 1000, 1)}

    return {
        "target_rate": rate, "produced": sent, "produce_seconds": round(produced_for, 2),
        "achieved_rate": round(sent / produced_for),
        "hour_close_delay": stats([line_seen[h] - t for h, t in close_sent.items() if h in line_seen]),
        "hours_closed": len(close_sent), "hours_with_line": sum(1 for h in close_sent if h in line_seen),
        "late_event_delay": stats([probe_seen[k] - t for k, t in probe_sent.items() if k in probe_seen]),
        "late_probes": len(probe_sent), "late_probes_with_line": sum(1 for k in probe_sent if k in probe_seen),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap")
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    a = ap.parse_args()
    if not 1 <= a.events <= 5_000_000 or not 1 <= a.rate <= 200_000 or not 1 <= a.seconds <= 300:
        ap.error("bounds: 1 <= --events <= 5e6, 1 <= --rate <= 2e5, 1 <= --seconds <= 300")
    server = None
    bootstrap = a.bootstrap
    if not bootstrap:
        from tests.servers import start_kafka

        server = start_kafka()
        bootstrap = server.bootstrap
    try:
        sfx = uuid.uuid4().hex[:8]
        s = settings(bootstrap, sfx)
        ensure_topics(bootstrap, [s.usage_topic], partitions=3)
        result = {"bench": "metering", "host": platform.node(), "cpus": os.cpu_count(),
                  "python": platform.python_version(), "throughput": phase_throughput(s, a.events)}
        s2 = settings(bootstrap, sfx + "d")
        ensure_topics(bootstrap, [s2.usage_topic], partitions=3)
        result["delay"] = phase_delay(s2, a.rate, a.seconds)
        result["target_events_per_second"] = 20000
        result["meets_target"] = result["throughput"]["events_per_second"] >= 20000
        result["load_average_at_end"] = os.getloadavg()
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            from tests.servers import cleanup

            cleanup(server)


if __name__ == "__main__":
    main()
