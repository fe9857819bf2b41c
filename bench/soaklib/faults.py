"""The fault kinds and their schedule.

One fault at a time: inject, hold for a random duration, heal, then measure the
time to recover (until everything the agent had spooled when the fault was
healed is recoverable from MinIO), then a random pause before the next.

Network faults are toxiproxy toxics on one link (stack.LINKS), chosen in turn:
- ``net_latency``: 300 ms ± 200 ms each way
- ``net_bandwidth``: 32 KB/s each way
- ``net_reset``: every connection that carries data is reset (RST)
- ``net_timeout``: client→server bytes stop; the connection is closed after 1.5 s
- ``net_half_open``: server→client bytes are swallowed and the connection is never
  closed: requests arrive and are acted on, their replies never come back

``spool_overflow`` cuts agent→ingest (the proxy disabled) until the agent's spool
overflows (the harness then runs the agent with a small spool limit), so the
overflow → dirty tracking → resync path runs under writes; bookmarks are refused
until the resync completes, checkpoints after it must be exact.
``overflow_agent_kill`` does the same and kill -9s the agent while it is in
overflow (its dirty bitmap is in memory only: the restart must resync all).
Its recovery time runs until the resync is complete and recoverable.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.soaklib.stack import LINKS

PROCESS_KINDS = ("kill_ingest", "kill_retention", "kill_recovery", "kill_agent", "kafka_restart", "minio_restart")
NET_KINDS = ("net_latency", "net_bandwidth", "net_reset", "net_timeout", "net_half_open")
OVERFLOW_KINDS = ("spool_overflow", "overflow_agent_kill")
KINDS = PROCESS_KINDS + NET_KINDS + OVERFLOW_KINDS
OVERFLOW_WAIT = 90.0  # seconds the link stays cut at most, waiting for the overflow

_TOXICS = {  # kind -> [(stream, toxiproxy type, attributes)]
    "net_latency": [("downstream", "latency", {"latency": 300, "jitter": 200}),
                    ("upstream", "latency", {"latency": 300, "jitter": 200})],
    "net_bandwidth": [("downstream", "bandwidth", {"rate": 32}), ("upstream", "bandwidth", {"rate": 32})],
    "net_reset": [("upstream", "reset_peer", {"timeout": 0})],
    "net_timeout": [("upstream", "timeout", {"timeout": 1500})],
    "net_half_open": [("downstream", "timeout", {"timeout": 0})],
}


@dataclass
class FaultRecord:
    kind: str
    target: str
    t_inject: float
    t_heal: float = 0.0
    sequence_at_heal: int | None = None
    recover_seconds: float | None = None  # heal started → sequence_at_heal recoverable; None: not within the wait
    error: str | None = None

    @property
    def window_end(self) -> float:
        return self.t_heal + (self.recover_seconds if self.recover_seconds is not None else 0.0)

    def as_dict(self, t0: float) -> dict:
        return {"kind": self.kind, "target": self.target, "at_s": round(self.t_inject - t0, 1),
                "held_s": round(self.t_heal - self.t_inject, 1), "sequence_at_heal": self.sequence_at_heal,
                "recover_s": None if self.recover_seconds is None else round(self.recover_seconds, 2),
                **({"error": self.error} if self.error else {})}


@dataclass
class Injector:
    """Injects and heals one fault kind at a time on the soak's stack, pipeline and agent."""

    stack: object  # bench.soaklib.stack.SoakStack
    pipeline: object  # deploy.local.pipeline.Pipeline
    agent: object  # deploy.local.pipeline.Agent
    group: str
    rng: random.Random
    recover_timeout: float = 180.0
    records: list[FaultRecord] = field(default_factory=list)
    _net_turn: int = 0

    def _hold(self, kind: str) -> float:
        if kind in NET_KINDS:
            return self.rng.uniform(2.0, 6.0)
        return self.rng.uniform(0.5, 3.0)  # how long the process stays down

    def _process_fault(self, kind: str) -> tuple[str, Callable[[], None], Callable[[], None]]:
        if kind.startswith("kill_") and kind != "kill_agent":
            svc = self.pipeline.service(kind.removeprefix("kill_"))
            return svc.name, svc.kill, lambda: svc.start(timeout=180)
        if kind == "kill_agent":
            m = self.agent.managed
            return m.name, m.kill, lambda: m.start(timeout=120)
        srv = self.stack.servers[kind.removesuffix("_restart")]
        return srv.name, srv.stop, lambda: srv.start(timeout=240)

    def _net_fault(self, kind: str) -> tuple[str, Callable[[], None], Callable[[], None]]:
        link = LINKS[self._net_turn % len(LINKS)]
        self._net_turn += 1
        proxy = self.stack.proxy

        def inject() -> None:
            for n, (stream, typ, attrs) in enumerate(_TOXICS[kind]):
                proxy.add_toxic(link, f"{kind}-{n}", typ, attrs, stream=stream)

        return link, inject, lambda: proxy.clear(link)

    def _hold_overflow(self, rec: FaultRecord) -> None:
        deadline = time.monotonic() + OVERFLOW_WAIT
        while time.monotonic() < deadline:
            try:
                if self.agent.group_status()["overflow"]:
                    time.sleep(self.rng.uniform(0.5, 3.0))  # writes keep landing as dirty regions only
                    if rec.kind == "overflow_agent_kill":
                        self.agent.managed.kill()
                        time.sleep(self.rng.uniform(0.5, 2.0))
                        self.agent.managed.start(timeout=120)
                    return
            except Exception:  # noqa: BLE001 - a status poll that fails is retried
                pass
            time.sleep(0.3)
        rec.error = f"the spool did not overflow within {OVERFLOW_WAIT:.0f}s"

    def run_one(self, kind: str) -> FaultRecord:
        if kind in OVERFLOW_KINDS:
            target, inject, heal = "ingest", lambda: self.stack.proxy.set_enabled("ingest", False), \
                lambda: self.stack.proxy.clear("ingest")
        else:
            target, inject, heal = (self._net_fault if kind in NET_KINDS else self._process_fault)(kind)
        rec = FaultRecord(kind, target, time.monotonic())
        self.records.append(rec)
        try:
            inject()
            if kind in OVERFLOW_KINDS:
                self._hold_overflow(rec)
            else:
                time.sleep(self._hold(kind))
        finally:
            rec.t_heal = time.monotonic()  # the repair starts: a restart's own time counts as recovery
            try:
                heal()
            except Exception as err:  # noqa: BLE001 - a fault that cannot be healed is a finding, recorded
                rec.error = f"heal failed: {err}"
        self._measure_recovery(rec)
        return rec

    def _measure_recovery(self, rec: FaultRecord) -> None:
        """Until the sequence the agent had reached once healed is recoverable (``recover_timeout``)."""
        deadline = rec.t_heal + self.recover_timeout
        while rec.sequence_at_heal is None and time.monotonic() < deadline:
            try:
                g = self.agent.group_status()
                if rec.kind not in OVERFLOW_KINDS or not (g["overflow"] or g["resync_pending"]):
                    rec.sequence_at_heal = int(g["last_sequence"])
                    continue
            except Exception:  # noqa: BLE001 - the agent may still be starting
                pass
            time.sleep(0.2)
        while rec.sequence_at_heal is not None and time.monotonic() < deadline:
            try:
                latest = self.pipeline.points(self.group)["latest"]
                if latest and latest["sequence"] >= rec.sequence_at_heal:
                    rec.recover_seconds = time.monotonic() - rec.t_heal
                    return
            except Exception:  # noqa: BLE001 - recovery or MinIO may still be coming back
                pass
            time.sleep(0.2)
        rec.error = rec.error or f"not recovered within {self.recover_timeout:.0f}s"


def schedule(kinds: list[str], rng: random.Random, deadline: float, min_faults: int = 0):
    """Rounds over ``kinds`` in random order: the first round always completes; later ones until
    ``deadline`` has passed and at least ``min_faults`` faults were yielded."""
    first, count = True, 0

    def more() -> bool:
        return time.monotonic() < deadline or count < min_faults

    while first or more():
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            if not first and not more():
                return
            count += 1
            yield kind
        first = False
