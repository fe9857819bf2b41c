"""Replay a workload profile through a running agent; compare measured RPO with the analyzer's prediction.

The agent (``dialback protect --bandwidth B ...``) must already be protecting
a volume, shipping to a real ingest (→ Kafka), with its initial sync done.
This driver writes over NBD at the profile's per-second rates, polls the
agent's ``/status`` for ``rpo_seconds``, keeps polling until the backlog has
drained, and prints JSON with predicted vs measured p99 (and max) RPO.

Scaling, so a day-long profile runs in minutes (RPO is then in replay seconds):

* ``--from-s/--duration-s`` pick a window of the profile;
* ``--time-scale S`` packs S profile seconds into one replay second;
* ``--rate-scale K`` multiplies bytes (both write rates and what the link is
  compared against are in replay bytes, so pick B for the scaled series).

The prediction is made on the series actually written (per-second bytes and
writes as the NBD client achieved them), with the payloads' measured zstd
ratio and the shipper's framing, at the agent's bandwidth (the shipper paces
batch bodies: no TLS/TCP overhead in that limit), plus ``--latency``.

    .venv/bin/python bench/rpo_replay.py --profile web1.dbprof --bandwidth 2000000 \\
        --nbd SPOOL/GROUP.nbd.sock --export disk0 --control SPOOL/GROUP.control.sock --time-scale 60
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.nbd.client import connect  # noqa: E402
from agent.profile.reader import read_profile  # noqa: E402
from services.analyzer.queue import rpo_series  # noqa: E402
from services.analyzer.series import from_arrays, server_series  # noqa: E402
from services.analyzer.wire import WireModel  # noqa: E402

BLOCK = 4096


def replay_plan(profile_path: str, from_s: int, duration_s: int | None, time_scale: int,
                rate_scale: float, max_writes: int, max_write: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per replay second: bytes and number of writes; and the profile's measured zstd ratio (or None)."""
    s = server_series([read_profile(profile_path)])[0]
    w, n = s.write_bytes[from_s:], s.iops[from_s:]
    if duration_s:
        w, n = w[:duration_s], n[:duration_s]
    k = len(w) // time_scale * time_scale
    if k == 0:
        raise SystemExit(f"profile window of {len(w)} s is shorter than --time-scale {time_scale}")
    b = w[:k].reshape(-1, time_scale).sum(axis=1) * rate_scale
    ops = n[:k].reshape(-1, time_scale).sum(axis=1)
    # The Python NBD client issues one request at a time: fewer, larger writes keep the byte rate.
    ops = np.clip(np.maximum(ops, np.ceil(b / max_write)), 0, max_writes)
    ops = np.clip(ops, 1, b // BLOCK)  # whole 4 KiB blocks: never more writes than blocks
    ops = np.where(b >= BLOCK, ops, 0)
    return b, ops.astype(int), s.compress_ratio


class Payloads:
    """Payloads that zstd compresses to about ``ratio``: random bytes followed by zeroes."""

    def __init__(self, ratio: float | None, seed: int = 0):
        self.ratio = 1.0 if ratio is None else min(max(ratio, 0.0), 1.0)
        self.pool = np.random.default_rng(seed).bytes(8 << 20)
        self.rng = np.random.default_rng(seed + 1)

    def make(self, length: int) -> bytes:
        rnd = int(length * self.ratio)
        at = int(self.rng.integers(0, len(self.pool) - rnd)) if rnd < len(self.pool) else 0
        return self.pool[at: at + rnd] + bytes(length - rnd)


class RpoSampler(threading.Thread):
    def __init__(self, control: str, group: str | None, every: float):
        super().__init__(daemon=True)
        # an http(s) URL, or the path of the agent's control socket
        self.uds = None if control.startswith(("http://", "https://")) else control
        self.url = "http://localhost/status" if self.uds else control.rstrip("/") + "/status"
        self.group, self.every = group, every
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.errors = 0

    def rpo(self, client: httpx.Client) -> float:
        groups = client.get(self.url, timeout=5).json()["groups"]
        if self.group:
            return float(groups[self.group]["rpo_seconds"])
        return max(float(g["rpo_seconds"]) for g in groups.values())

    def run(self) -> None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=self.uds) if self.uds else None) as c:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    self.samples.append((t, self.rpo(c)))
                except (httpx.HTTPError, KeyError, ValueError):
                    self.errors += 1
                self.stop.wait(max(0.0, self.every - (time.monotonic() - t)))


def drive(nbd_addr: str, export: str, plan_bytes: np.ndarray, plan_ops: np.ndarray, payloads: Payloads,
          region: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, float, list[float]]:
    """Write the plan second by second; returns achieved bytes and writes per second, start time, ratios."""
    # the agent's NBD Unix socket (a path), or host:port
    host, port = (nbd_addr, None) if "/" in nbd_addr else nbd_addr.rsplit(":", 1)
    rng = np.random.default_rng(seed)
    done_b, done_n = np.zeros(len(plan_bytes)), np.zeros(len(plan_bytes))
    zc, ratios = zstandard.ZstdCompressor(level=1), []
    with connect(host, None if port is None else int(port), export) as nbd:
        span = min(region or nbd.size, nbd.size) // BLOCK
        t0 = time.monotonic()
        for j, (b, n) in enumerate(zip(plan_bytes, plan_ops)):
            if n == 0:
                continue
            size = max(BLOCK, int(round(b / n / BLOCK)) * BLOCK)
            for i in range(n):
                due = t0 + j + i / n
                now = time.monotonic()
                if now < due:
                    time.sleep(due - now)
                elif now > t0 + j + 1:
                    break  # behind schedule: the rest of this second is dropped, and recorded as not written
                data = payloads.make(size)
                if len(ratios) < 200:
                    ratios.append(min(len(data), len(zc.compress(data))) / len(data))
                nbd.pwrite(data, int(rng.integers(0, max(1, span - size // BLOCK))) * BLOCK)
                k = min(int(time.monotonic() - t0), len(done_b) - 1)
                done_b[k] += size
                done_n[k] += 1
    return done_b, done_n, t0, ratios


def predict(bytes_s: np.ndarray, ops_s: np.ndarray, ratio: float, bandwidth: float, latency: float,
            volume_id: str) -> np.ndarray:
    s = from_arrays("replay", bytes_s, ops_s)
    wire = WireModel(ratio, True, False, False, False, len(volume_id.encode())).stored(s)
    return rpo_series(wire, bandwidth) + latency


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--bandwidth", type=float, required=True, help="the agent's --bandwidth, bytes/s")
    ap.add_argument("--nbd", default="127.0.0.1:10809", help="agent NBD socket path (SPOOL/GROUP.nbd.sock) or host:port")
    ap.add_argument("--export", default="disk0", help="NBD export (volume) name")
    ap.add_argument("--control", default="http://127.0.0.1:7450", help="agent control socket path (SPOOL/GROUP.control.sock) or URL")
    ap.add_argument("--group", default=None, help="group whose RPO to sample (default: the worst)")
    ap.add_argument("--from-s", type=int, default=0)
    ap.add_argument("--duration-s", type=int, default=None, help="profile seconds to replay")
    ap.add_argument("--time-scale", type=int, default=1, help="profile seconds per replay second")
    ap.add_argument("--rate-scale", type=float, default=1.0, help="multiply bytes by this")
    ap.add_argument("--max-writes", type=int, default=200, help="writes per replay second at most")
    ap.add_argument("--max-write", type=int, default=1 << 20, help="largest write, bytes")
    ap.add_argument("--region", type=int, default=None, help="write within the first N bytes of the disk")
    ap.add_argument("--latency", type=float, default=0.2, help="pipeline latency added to the prediction, s")
    ap.add_argument("--sample-every", type=float, default=0.25)
    ap.add_argument("--drain-timeout", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trace", default=None, help="write per-second predicted and sampled RPO here (JSON)")
    a = ap.parse_args(argv)

    plan_b, plan_n, ratio = replay_plan(a.profile, a.from_s, a.duration_s, a.time_scale, a.rate_scale,
                                        a.max_writes, a.max_write)
    sampler = RpoSampler(a.control, a.group, a.sample_every)
    sampler.start()
    done_b, done_n, t0, ratios = drive(a.nbd, a.export, plan_b, plan_n, Payloads(ratio, a.seed), a.region, a.seed)
    deadline = time.monotonic() + a.drain_timeout
    time.sleep(2 * a.sample_every)
    while time.monotonic() < deadline and (not sampler.samples or sampler.samples[-1][1] > 0):
        time.sleep(a.sample_every)
    t_end = time.monotonic()
    sampler.stop.set()
    sampler.join()

    measured = np.array([r for t, r in sampler.samples if t0 <= t <= t_end])
    n_total = int(np.ceil(t_end - t0))
    pad = lambda x: np.concatenate([x, np.zeros(max(0, n_total - len(x)))])  # noqa: E731  drain time: no writes
    wire_ratio = float(np.mean(ratios)) if ratios else 1.0
    pred = predict(pad(done_b), pad(done_n), wire_ratio, a.bandwidth, a.latency, a.export)
    pred_plan = predict(pad(plan_b), pad(plan_n), wire_ratio, a.bandwidth, a.latency, a.export)
    p99_pred, p99_meas = float(np.percentile(pred, 99)), float(np.percentile(measured, 99)) if len(measured) else None
    out = {
        "profile": a.profile, "bandwidth_bytes_per_s": a.bandwidth, "time_scale": a.time_scale,
        "rate_scale": a.rate_scale, "replay_seconds": len(plan_b), "observed_seconds": round(t_end - t0, 1),
        "planned_bytes": float(plan_b.sum()), "written_bytes": float(done_b.sum()),
        "payload_zstd_ratio": round(wire_ratio, 4), "samples": int(len(measured)), "sample_errors": sampler.errors,
        "predicted_p99_rpo_s": round(p99_pred, 2), "measured_p99_rpo_s": None if p99_meas is None else round(p99_meas, 2),
        "predicted_max_rpo_s": round(float(pred.max()), 2),
        "measured_max_rpo_s": round(float(measured.max()), 2) if len(measured) else None,
        "predicted_p99_rpo_s_as_planned": round(float(np.percentile(pred_plan, 99)), 2),
        "p99_error": None if not p99_meas or not p99_pred else round(p99_meas / p99_pred - 1, 3),
    }
    out["within_20pct"] = out["p99_error"] is not None and abs(out["p99_error"]) <= 0.2
    if a.trace:
        Path(a.trace).write_text(json.dumps({
            "predicted": pred.round(3).tolist(), "written_bytes": done_b.tolist(),
            "samples": [(round(t - t0, 3), r) for t, r in sampler.samples if t0 <= t <= t_end]}))
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
