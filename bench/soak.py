"""Soak under faults: nothing acknowledged is ever lost or silently wrong (docs/soak.md).

    .venv/bin/python -m bench.soak --minutes 30              # the benchmark
    .venv/bin/python -m bench.soak --minutes 2 --seed 7      # a short run
    .venv/bin/python -m bench.soak --faults kill_agent,net_half_open --minutes 5

Starts its own Kafka, MinIO and toxiproxy (no `dialback stack up` needed), the
services and an agent as processes, with agent→ingest and services→Kafka/MinIO
through toxiproxy. A writer applies random writes/zeroes/trims through the tap
at ``--rate`` operations/s and keeps a reference model; every
``--checkpoint-seconds`` it takes a bookmark and records the model's SHA-256.
Meanwhile faults fire one at a time at random intervals (bench/soaklib/faults.py).
Afterwards every checkpoint is recovered through the recovery service and
compared with the model. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from bench.soaklib import verify
from bench.soaklib.faults import KINDS, OVERFLOW_KINDS, Injector, schedule
from bench.soaklib.stack import SoakStack
from bench.soaklib.writer import Writer
from deploy.local.pipeline import Pipeline, sha256_file

GROUP, VOLUME = "soak", "d0"
SPOOL_LIMIT_OVERFLOW = 2 << 20  # bytes: ~6 s of writes at the default rate


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 3)


class RpoSampler(threading.Thread):
    """Samples the agent's own RPO (age of the oldest unacknowledged spooled write) every 0.25 s."""

    def __init__(self, agent) -> None:
        super().__init__(daemon=True, name="soak-rpo")
        self.agent, self.samples, self.stop = agent, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            try:
                self.samples.append((time.monotonic(), float(self.agent.group_status()["rpo_seconds"])))
            except Exception:  # noqa: BLE001 - the agent is down during its own faults: no sample
                pass


def run(minutes: float, seed: int, kinds: list[str], rate: float, disk_mib: int = 16,
        checkpoint_seconds: float = 4.0, gap: tuple[float, float] = (1.0, 5.0), echo=print,
        min_faults: int = 0) -> dict:
    """One soak; returns the figures (see docs/soak.md for each field).

    With an overflow fault among ``kinds`` the agent's spool limit is SPOOL_LIMIT_OVERFLOW, so
    the other faults' longer stalls may overflow it as well (more resyncs, never fewer checks).
    """
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="dialback-soak-"))
    stack = SoakStack(work / "servers")
    pipeline = None
    try:
        echo("soak: starting toxiproxy, Kafka and MinIO")
        stack.start(echo)
        pipeline = Pipeline.create(stack.env(), work / "home")
        pipeline.ports["ingest"] = stack.ingest_port  # the `ingest` proxy forwards to it
        pipeline.env["DIALBACK_INGEST_PORT"] = str(stack.ingest_port)
        pipeline.start()
        disk = work / "d0.img"
        initial = random.Random(f"{seed}-disk").randbytes(disk_mib << 20)  # the initial sync must carry it
        disk.write_bytes(initial)
        spool_limit = SPOOL_LIMIT_OVERFLOW if set(kinds) & set(OVERFLOW_KINDS) else None
        agent = pipeline.start_agent(GROUP, {VOLUME: disk}, spool_limit=spool_limit,
                                     extra={"DIALBACK_AGENT_INGEST": stack.agent_ingest_url})
        agent.wait_shipped(timeout=300)

        writer = Writer(agent.nbd_socket, VOLUME, agent.control_socket, GROUP, bytearray(initial), f"soak-{seed}",
                        rate, checkpoint_seconds)
        sampler = RpoSampler(agent)
        injector = Injector(stack, pipeline, agent, GROUP, rng)
        t0 = time.monotonic()
        writer.start()
        sampler.start()
        time.sleep(min(checkpoint_seconds * 1.5, 6))  # a checkpoint before the first fault
        echo(f"soak: writing at {rate:g} ops/s; faults: {', '.join(kinds)}")
        for kind in schedule(kinds, rng, t0 + minutes * 60, min_faults):
            if writer.error is not None:
                break
            rec = injector.run_one(kind)
            echo(f"soak: {rec.kind} on {rec.target} at {rec.t_inject - t0:.0f}s, held {rec.t_heal - rec.t_inject:.1f}s,"
                 f" recovered in {rec.recover_seconds if rec.recover_seconds is None else round(rec.recover_seconds, 1)}s"
                 + (f" ({rec.error})" if rec.error else ""))
            time.sleep(rng.uniform(*gap))
        t_faults_end = time.monotonic()

        stack.heal_all()
        for svc in pipeline.services.values():
            svc.start(timeout=180)
        for srv in stack.servers.values():
            srv.start(timeout=240)
        agent.managed.start(timeout=120)
        last_cp = writer.finish()
        sampler.stop.set()
        if writer.error is not None:
            raise RuntimeError(f"the writer stopped: {writer.error!r}") from writer.error
        if last_cp is None:
            raise RuntimeError("no final checkpoint: the agent did not take a bookmark within a minute")
        echo(f"soak: {len(writer.ops)} operations, {len(writer.checkpoints)} checkpoints; catching up")
        t_catch = time.monotonic()
        last = agent.wait_shipped(timeout=600)
        pipeline.wait_recoverable(GROUP, last, timeout=600)
        catch_up = time.monotonic() - t_catch

        v = verify.Verdict()
        disk_ok = sha256_file(disk) == last_cp.sha256
        if not disk_ok:
            v.findings.append({"error": "the agent's backing disk differs from the model (the tap itself is wrong)"})
        verify.journal(pipeline.store(), pipeline.tenant, GROUP, v)
        echo(f"soak: recovering {len(writer.checkpoints)} checkpoints")
        verify.checkpoints(pipeline, GROUP, VOLUME, initial, writer.seed, writer.ops, writer.checkpoints,
                           writer.acked_at, injector.records, t0, work, v)
        return _figures(minutes, seed, rate, writer, injector, sampler, v, t0, t_faults_end, catch_up, disk_ok, last)
    finally:
        if pipeline is not None:
            pipeline.stop_all()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def _figures(minutes, seed, rate, writer, injector, sampler, v, t0, t_faults_end, catch_up, disk_ok, last) -> dict:
    windows = [(f.t_inject, f.window_end if f.recover_seconds is not None else f.t_heal + injector.recover_timeout)
               for f in injector.records]
    during = [r for t, r in sampler.samples if any(a <= t <= b for a, b in windows)]
    between = [r for t, r in sampler.samples if not any(a <= t <= b for a, b in windows) and t <= t_faults_end]
    recover: dict[str, list[float]] = defaultdict(list)
    for f in injector.records:
        if f.recover_seconds is not None:
            recover[f.kind].append(f.recover_seconds)
    return {
        "bench": "soak",
        "minutes": minutes, "seed": seed, "rate_ops_per_s": rate,
        "fault_schedule_seconds": round(t_faults_end - t0, 1),
        "faults_total": len(injector.records),
        "faults_injected": dict(Counter(f.kind for f in injector.records)),
        "faults_unrecovered": [f.as_dict(t0) for f in injector.records if f.recover_seconds is None or f.error],
        "writes_acknowledged": len(writer.ops),
        "writes_reissued_after_a_broken_connection": writer.reissued,
        "checkpoints_recorded": len(writer.checkpoints),
        "checkpoints_verified": v.checkpoints_verified,
        "bookmarks_refused": writer.bookmark_failures,
        "writes_lost": len(v.lost_ops),
        "initial_bytes_lost": v.initial_bytes_wrong,
        "duplicated": v.duplicated,
        "journal_gaps": v.journal_gaps,
        "not_exact": v.not_exact,
        "tap_disk_matches_model": disk_ok,
        "last_sequence": last,
        "rpo_p99_seconds": {"during_faults": _pct(during, 99), "between_faults": _pct(between, 99),
                            "max": _pct(during + between, 100), "samples": len(during) + len(between)},
        "recover_seconds_by_kind": {k: {"max": round(max(x), 2), "p50": _pct(x, 50), "n": len(x)}
                                    for k, x in sorted(recover.items())},
        "catch_up_seconds": round(catch_up, 1),
        "faults": [f.as_dict(t0) for f in injector.records],
        "findings": v.findings[:50],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="fault schedule length (one full round always runs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default=",".join(KINDS), help=f"comma-separated kinds (default all: {','.join(KINDS)})")
    ap.add_argument("--rate", type=float, default=20.0, help="write operations per second through the tap")
    ap.add_argument("--disk-mib", type=int, default=16)
    ap.add_argument("--checkpoint-seconds", type=float, default=4.0)
    ap.add_argument("--gap", default="1,5", help="MIN,MAX seconds of quiet between two faults (default 1,5)")
    ap.add_argument("--min-faults", type=int, default=0,
                    help="keep the schedule going past --minutes until this many faults were injected")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        ap.error(f"unknown fault kinds {unknown}; choose from {', '.join(KINDS)}")
    try:
        gap = tuple(float(x) for x in args.gap.split(","))
    except ValueError:
        gap = ()
    if len(gap) != 2 or not 0 <= gap[0] <= gap[1]:
        ap.error("--gap takes MIN,MAX seconds with 0 <= MIN <= MAX, for example 0.5,2")
    if not (0 < args.rate <= 500 and 1 <= args.disk_mib <= 1024 and args.checkpoint_seconds >= 0.5 and args.minutes >= 0):
        ap.error("--rate 0..500, --disk-mib 1..1024, --checkpoint-seconds >= 0.5, --minutes >= 0")
    figures = run(args.minutes, args.seed, kinds, args.rate, args.disk_mib, args.checkpoint_seconds, gap,
                  echo=lambda m: print(m, file=sys.stderr, flush=True), min_faults=args.min_faults)
    print(json.dumps(figures, indent=2))
    bad = figures["writes_lost"] or figures["duplicated"] or figures["not_exact"] or figures["journal_gaps"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
