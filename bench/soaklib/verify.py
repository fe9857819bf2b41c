"""After the run: recover every checkpoint and count what is lost, duplicated or not byte-exact.

- not byte-exact: a checkpoint whose recovered image's SHA-256 is not the model's
  (or recovery refused it, or the bookmark resolved to another sequence)
- lost: acknowledged operations whose bytes (those no later operation overwrote
  before the checkpoint) differ in the recovered image: the operation log is
  replayed with an owner map (which operation last wrote each byte)
- duplicated: sequences the journal's timeline holds more than once (a range
  overlapping the one before), and checkpoint sequences that do not increase
- journal gaps: sequences missing between the timeline's ranges
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.soaklib.writer import Checkpoint, Op, op_data
from shared import keys
from shared.tenancy import tenant_bucket


@dataclass
class Verdict:
    checkpoints_verified: int = 0
    not_exact: int = 0
    lost_ops: set[int] = field(default_factory=set)
    initial_bytes_wrong: int = 0
    duplicated: int = 0
    journal_gaps: int = 0
    findings: list[dict] = field(default_factory=list)


def journal(store, tenant: str, group: str, v: Verdict) -> None:
    ranges = sorted(keys.parse_range(o.key) for o in store.list(tenant_bucket(tenant), keys.timeline_prefix(group)))
    if not ranges:
        v.findings.append({"journal": "no timeline entries"})
        return
    if ranges[0][0] != 1:
        v.journal_gaps += ranges[0][0] - 1
        v.findings.append({"journal": f"timeline starts at {ranges[0][0]}, not 1"})
    for (a, b), (c, d) in zip(ranges, ranges[1:]):
        if c <= b:
            v.duplicated += min(b, d) - c + 1
            v.findings.append({"journal": f"sequences {c}-{min(b, d)} held twice ({a}-{b} then {c}-{d})"})
        elif c > b + 1:
            v.journal_gaps += c - b - 1
            v.findings.append({"journal": f"sequences {b + 1}-{c - 1} missing ({a}-{b} then {c}-{d})"})


def checkpoints(pipeline, group: str, volume: str, initial: bytes, seed: str, ops: list[Op],
                cps: list[Checkpoint], acked_at: list[float], faults, t0: float, work: Path, v: Verdict) -> None:
    """Recover each checkpoint by its bookmark and compare; on a mismatch, name the lost operations."""
    model = np.frombuffer(bytearray(initial), dtype=np.uint8).copy()
    owner = np.full(len(initial), -1, dtype=np.int32)
    replayed, last_seq = 0, 0
    out = work / "checkpoint.img"
    for cp in cps:
        for op in ops[replayed:cp.ops]:
            end = op.offset + op.length
            model[op.offset:end] = np.frombuffer(op_data(seed, op), dtype=np.uint8) if op.kind == "write" else 0
            owner[op.offset:end] = op.i
        replayed = cp.ops
        if cp.sequence <= last_seq:
            v.duplicated += 1
            v.findings.append({"checkpoint": cp.name, "error": f"bookmark sequence {cp.sequence} after {last_seq}"})
        last_seq = max(last_seq, cp.sequence)
        r = pipeline.download(group, volume, out, bookmark=cp.name)
        if r.status_code != 200:
            v.not_exact += 1
            v.findings.append({"checkpoint": cp.name, "sequence": cp.sequence, "error": f"recovery said {r.status_code}: {r.text[:300]}"})
            continue
        got_seq = int(r.headers.get("X-Dialback-Sequence", -1))
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        v.checkpoints_verified += 1
        if digest == cp.sha256 and got_seq == cp.sequence:
            continue
        v.not_exact += 1
        assert hashlib.sha256(model.tobytes()).hexdigest() == cp.sha256, "op-log replay disagrees with the model"
        rec = np.fromfile(out, dtype=np.uint8)
        finding = {"checkpoint": cp.name, "sequence": cp.sequence, "recovered_sequence": got_seq,
                   "at_s": round(cp.t - t0, 1)}
        if len(rec) != len(model):
            finding["error"] = f"recovered {len(rec)} bytes, the volume has {len(model)}"
            v.findings.append(finding)
            continue
        diff = rec != model
        who = np.unique(owner[diff])
        lost = [int(i) for i in who if i >= 0]
        v.lost_ops.update(lost)
        v.initial_bytes_wrong += int(np.count_nonzero(diff & (owner < 0)))
        finding.update({"bytes_wrong": int(np.count_nonzero(diff)), "first_wrong_offset": int(np.argmax(diff)),
                        "lost_ops": lost[:20], "lost_op_count": len(lost),
                        "faults_near_lost_ops": _near(lost, ops, acked_at, faults, t0)})
        v.findings.append(finding)
    out.unlink(missing_ok=True)


def _near(lost: list[int], ops: list[Op], acked_at: list[float], faults, t0: float) -> list[dict]:
    """For each lost operation (up to 10): when it was acknowledged and the fault active then or just before."""
    out = []
    for i in lost[:10]:
        t = acked_at[i]
        before = [f for f in faults if f.t_inject <= t]
        f = before[-1] if before else None
        out.append({"op": i, "kind": ops[i].kind, "offset": ops[i].offset, "length": ops[i].length,
                    "acked_at_s": round(t - t0, 2),
                    "fault": None if f is None else {"kind": f.kind, "target": f.target,
                                                      "during": f.t_inject <= t <= f.window_end,
                                                      "at_s": round(f.t_inject - t0, 1)}})
    return out
