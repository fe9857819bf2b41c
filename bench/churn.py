"""Sustained churn through the whole data path, measured end to end.

    .venv/bin/dialback stack up
    .venv/bin/python -m bench.churn --rate 50 --seconds 30      # MB/s offered through the tap
    .venv/bin/python -m bench.churn --rate 0 --seconds 20       # as fast as the tap takes it
    .venv/bin/python -m bench.churn --tls --rate 100 --seconds 90   # ingest over HTTPS (agent checks the CA)
    .venv/bin/python -m bench.churn --compare --rate 100 --seconds 90
        # the pre-security code (bench/churncompare.py) then TLS + sealed Kafka, same run, with ratios

Starts ingest, retention, recovery and an agent as local processes against the
running stack, writes random blocks (256 KiB by default) through the tap's NBD export at the
offered rate, and prints JSON:
- sustained end-to-end MB/s (first write → last write recoverable from MinIO)
- the rate writes became recoverable over the second half of the write window (steady
  state, without the last write's lag), and how many MB were not yet recoverable when
  the last write was acknowledged (a backlog that keeps growing means the rate is not held)
- RPO per write: tap acknowledgement → ingest acknowledgement (p50/p99)
- recoverable lag per write: tap acknowledgement → recoverable (p99)
Targets: sustained >= 100 MB/s; p99 RPO <= 1 s at 50 MB/s; p99 recoverable lag <= 5 s.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import random
import shutil
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from agent.nbd.client import connect
from bench.cpu import CpuMeter
from deploy.local import minio_layout
from deploy.local.pipeline import Pipeline
from deploy.local.stack import Stack



def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Watcher(threading.Thread):
    """Polls a sequence number and records when each value was first seen."""

    def __init__(self, fetch, interval: float) -> None:
        super().__init__(daemon=True)
        self.fetch, self.interval = fetch, interval
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                seq = self.fetch()
                t = time.monotonic()
                if seq is not None and (not self.seen or seq > self.seen[-1][1]):
                    self.seen.append((t, seq))
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            time.sleep(self.interval)

    def value_at(self, t: float) -> int | None:
        """The highest value seen at or before monotonic time ``t`` (``seen`` is in time order)."""
        i = bisect.bisect_right(self.seen, t, key=lambda e: e[0])
        return self.seen[i - 1][1] if i else None

    def time_of(self, seq: int) -> float | None:
        for t, s in self.seen:
            if s >= seq:
                return t
        return None


def _ingest_figures(url: str, verify: ssl.SSLContext | bool = True) -> dict[str, float]:
    """Sums and counts from ingest's /metrics: Kafka wait per log, bodies by outcome."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=10, verify=verify).text
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name in ("dialback_ingest_produce_seconds_sum", "dialback_ingest_produce_seconds_count"):
                out[f"{smp.labels['log']}_{smp.name.rsplit('_', 1)[1]}"] = smp.value
            elif smp.name == "dialback_ingest_batches_total":
                out[smp.labels["outcome"]] = out.get(smp.labels["outcome"], 0) + smp.value
    return out


def _settle(stack: Stack, timeout: float = 180.0) -> None:
    """Wait until Kafka and MinIO have really removed what purge() deleted.

    Both delete in the background (Kafka's ``*-delete`` log directories, MinIO's
    ``.minio.sys/tmp`` trash); left running, that work would land in the next
    run's figures.
    """
    kafka_logs = stack.home / "kafka" / "logs"
    trash = [d / ".minio.sys" / "tmp" for d in minio_layout.drives(stack.home / "minio")]
    deadline = time.monotonic() + timeout

    def size(root: Path) -> int:  # files vanish while we walk: that is the point
        total = 0
        for d, _dirs, files in os.walk(root):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(d, f)).st_size
        return total

    def pending() -> bool:
        deleting = any(d.name.endswith("-delete") for d in kafka_logs.glob("*")) if kafka_logs.exists() else False
        return deleting or sum(size(t) for t in trash) > 64 << 20

    while pending() and time.monotonic() < deadline:
        time.sleep(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=50.0, help="offered MB/s (0 = unthrottled)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--disk-mib", type=int, default=512)
    ap.add_argument("--block-kib", type=int, default=256, help="write size (≤ 256: one record per write)")
    ap.add_argument("--tls", action="store_true", help="ingest serves HTTPS; the agent ships to it checking the CA")
    ap.add_argument("--compare", action="store_true",
                    help="run the pre-security code (--baseline-commit), then this code with --tls; one JSON with ratios")
    ap.add_argument("--baseline-commit", default="b9af412", help="'today's settings' for --compare")
    args = ap.parse_args()
    if args.compare:
        from bench.churncompare import compare

        print(json.dumps(compare(args), indent=2))
        return
    if not 4 <= args.block_kib <= 256:
        ap.error("--block-kib must be 4..256 so each write is one record (the bench maps writes to sequences)")
    block = args.block_kib << 10
    args.seconds = min(args.seconds, 300.0)  # bounded load

    stack = Stack.default()
    work = Path(tempfile.mkdtemp(prefix="dialback-churn-"))
    p = Pipeline.create(stack.env(), work / "home", tls=args.tls)
    try:
        p.start()
        disk = work / "disk.img"
        with open(disk, "wb") as f:
            f.truncate(args.disk_mib << 20)
        agent = p.start_agent("churn", {"d0": disk})
        agent.wait_shipped(timeout=600)
        base = agent.bookmark("churn-start")["sequence"]
        p.wait_recoverable("churn", base)

        # Poll periods bound the figures' resolution (RPO 50 ms, lag 250 ms); both polls cost the
        # path CPU (agent status; recovery lists the timeline), so they are no faster than needed.
        acked = Watcher(lambda: agent.group_status()["acked_through"], 0.05)
        recoverable = Watcher(lambda: p.points("churn")["latest"]["sequence"], 0.25)
        acked.start()
        recoverable.start()

        rng = random.Random(1)
        payloads = [rng.randbytes(block) for _ in range(64)]
        tap_ack: list[float] = []
        blocks = (args.disk_mib << 20) // block
        cpu = CpuMeter({
            "agent": agent.managed.pid(), **{n: m.pid() for n, m in p.services.items()},
            "kafka": stack.kafka().pid(), "minio": stack.minio().pid(), "bench": os.getpid(),
        })
        ing0 = _ingest_figures(p.ingest_url, p.ingest_verify)
        print(f"churn: writing for {args.seconds:g} s", file=sys.stderr, flush=True)  # a profiler can start here
        t0 = time.monotonic()
        with connect(agent.nbd_socket, None, "d0") as c:
            i = 0
            while (now := time.monotonic()) - t0 < args.seconds:
                if args.rate > 0:
                    due = t0 + i * block / (args.rate * 1e6)
                    if due > now:
                        time.sleep(due - now)
                c.pwrite(payloads[i % 64], (rng.randrange(blocks)) * block)
                tap_ack.append(time.monotonic())
                i += 1
        write_seconds = time.monotonic() - t0
        last_seq = base + len(tap_ack)
        deadline = time.monotonic() + 300
        while recoverable.time_of(last_seq) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        acked.stop.set()
        recoverable.stop.set()

        rpo = [acked.time_of(base + 1 + k) - t for k, t in enumerate(tap_ack) if acked.time_of(base + 1 + k)]
        lag = [recoverable.time_of(base + 1 + k) - t for k, t in enumerate(tap_ack)
               if recoverable.time_of(base + 1 + k)]
        end = recoverable.time_of(last_seq)
        mb = len(tap_ack) * block / 1e6
        # Steady state: how fast writes became recoverable over the second half of the write window,
        # once the path is warm. The end-to-end figure also pays the last write's lag once.
        half, stop = t0 + write_seconds / 2, t0 + write_seconds
        r_half, r_stop = recoverable.value_at(half), recoverable.value_at(stop)
        known = r_half is not None and r_stop is not None
        steady = (r_stop - r_half) * block / 1e6 / (stop - half) if known else None
        backlog_mb = (last_seq - r_stop) * block / 1e6 if r_stop is not None else None
        cpu_use = cpu.stop((end or time.monotonic()) - t0, mb)
        ing = {k: v - ing0.get(k, 0) for k, v in _ingest_figures(p.ingest_url, p.ingest_verify).items()}
        bodies = ing.get("accepted", 0)
        print(json.dumps({
            "bench": "churn",
            "ingest_https": bool(args.tls),
            "offered_MBps": args.rate or "unthrottled",
            "written_MB": round(mb, 1),
            "tap_MBps": round(mb / write_seconds, 1),
            "sustained_end_to_end_MBps": round(mb / (end - t0), 1) if end else None,
            "recoverable_MBps_second_half": round(steady, 1) if steady is not None else None,
            "not_yet_recoverable_at_last_write_MB": round(backlog_mb, 1) if backlog_mb is not None else None,
            "rpo_seconds": {"p50": round(_pct(rpo, 50), 3), "p99": round(_pct(rpo, 99), 3), "max": round(max(rpo), 3)},
            "recoverable_lag_seconds": {"p50": round(_pct(lag, 50), 3), "p99": round(_pct(lag, 99), 3)},
            "writes": len(tap_ack),
            "all_recoverable": end is not None,
            "cpus": os.cpu_count(),
            "cpu": cpu_use,
            # Where a body's time goes in ingest: the wait for Kafka's acks (writes, then control).
            "ingest": {"bodies": int(bodies), "duplicate_bodies": int(ing.get("duplicate", 0)),
                       "kafka_wait_ms_per_body": {
                           log_: round(1000 * ing.get(f"{log_}_sum", 0) / max(1, ing.get(f"{log_}_count", 0)), 1)
                           for log_ in ("writes", "control")},
                       "MB_per_body": round(mb / max(1, bodies), 2)},
            "load_average": os.getloadavg()[0],
            "targets": {"sustained_MBps": 100, "p99_rpo_s_at_50MBps": 1.0, "p99_recoverable_lag_s": 5.0},
        }, indent=2))
    finally:
        p.stop_all()
        p.purge()  # its topics and objects: gigabytes a run, enough to fill the disk after a few
        _settle(stack)
        shutil.rmtree(work, ignore_errors=True)  # disk image, spool and logs: ~0.5 GB a run


if __name__ == "__main__":
    main()
