"""A retained history to verify, and the damage verify must find (shared by the memory and MinIO tests)."""

from __future__ import annotations

from dataclasses import dataclass

from services.retention.job import run_tenant
from services.retention.policy import DAY_NS, HOUR_NS, Policy, write_policy
from shared import bases as B
from shared import keys
from shared.journal import read_timeline
from tests.services.retention.sim import SimGroup

GROUP = "db"
VOLUMES = {"disk0": 512 << 10, "disk1": 256 << 10}
T0 = 20_400 * DAY_NS + 5 * HOUR_NS
POLICY = Policy(anypoint_hours=6, hourly_days=0.5, daily_weeks=1)
CHUNK = 32 << 10


def build_history(store, tenant: str) -> SimGroup:
    """Two days of writes, rolled up and garbage-collected: bases, chunks and a partial journal."""
    sim = SimGroup(store, tenant, GROUP, VOLUMES, T0, seed=5)
    write_policy(store, sim.bucket, GROUP, POLICY)
    sim.initial_sync()
    for day in (1, 2):
        sim.advance(T0 + day * DAY_NS, mean_gap_ns=10 * 60 * 10**9)
        run_tenant(store, sim.bucket, now_ns=sim.now, chunk_size=CHUNK, lease_now_ns=sim.now, chunk_grace_s=0)
    return sim


@dataclass(frozen=True)
class Target:
    kind: str   # segment | chunk | base | timeline
    key: str


def targets(store, bucket: str) -> dict[str, Target]:
    """One object of each kind verify must cover; the base is the one the journal starts from."""
    entries = sorted(read_timeline(store, bucket, GROUP), key=lambda e: e.first_seq)
    first = entries[0]
    bases = B.read_bases(store, bucket, GROUP)
    floor = [b for b in bases if first.first_seq - 1 <= b.sequence <= first.last_seq][0]
    older = [b for b in bases if b.sequence < floor.sequence]
    assert first.first_seq > 1 and older, "the history must have lost journal to GC and kept older bases"
    assert len(entries) >= 3, "the middle entry must not be the newest"
    mid = entries[len(entries) // 2]
    chunk = sorted(floor.chunk_ids())[0]
    return {"segment": Target("segment", mid.segment),
            "chunk": Target("chunk", keys.chunk_key(chunk)),
            "base": Target("base", floor.key),
            "older_base": Target("base", older[-1].key),
            "timeline": Target("timeline", keys.timeline_key(GROUP, mid.first_seq, mid.last_seq))}


def flip(raw_store, bucket: str, key: str, at: int | None = None) -> None:
    body = bytearray(raw_store.get(bucket, key))
    i = len(body) - 2 if at is None else at
    body[i] ^= 0x5A
    raw_store.put(bucket, key, bytes(body))


def truncate(raw_store, bucket: str, key: str) -> None:
    body = raw_store.get(bucket, key)
    raw_store.put(bucket, key, body[: len(body) * 2 // 3])


def delete(raw_store, bucket: str, key: str) -> None:
    raw_store.delete(bucket, key)


def damage(raw_store, bucket: str, how: str, target: Target, encrypted: bool = False) -> None:
    if how == "flip":
        # plain documents: flip the first byte ('{'), so the store holds malformed JSON, not a silently valid
        # one; anything else: a byte near the end (the last record's CRC or payload, the last GCM tag)
        flip(raw_store, bucket, target.key, 0 if target.kind in ("base", "timeline") and not encrypted else None)
    elif how == "truncate":
        truncate(raw_store, bucket, target.key)
    else:
        delete(raw_store, bucket, target.key)


# What verify must say: (damage, kind) -> accepted 'what' values, for a plain and an encrypted store.
PLAIN = {
    ("flip", "segment"): {"CRC mismatch"},
    ("flip", "chunk"): {"chunk hash mismatch", "corrupt"},
    ("flip", "base"): {"malformed"},
    ("flip", "timeline"): {"malformed"},
    ("truncate", "segment"): {"truncated"},
    ("truncate", "chunk"): {"truncated", "corrupt"},
    ("truncate", "base"): {"malformed"},
    ("truncate", "timeline"): {"malformed"},
}
ENCRYPTED_READ = {"flip": {"tag failed"}, "truncate": {"truncated"}}


def expected(how: str, kind: str, encrypted: bool) -> tuple[set[str], str | None]:
    """(accepted 'what' values, key suffix the problem must name; None = the group's prefix for the kind).

    An unreadable timeline entry also leaves its range uncovered: 'timeline gap' may come with it.
    """
    found, rule = _expected(how, kind, encrypted)
    return (found | {"timeline gap"} if kind == "timeline" else found), rule


def _expected(how: str, kind: str, encrypted: bool) -> tuple[set[str], str | None]:
    if how == "delete":
        if kind == "base":
            return {"missing"}, None
        if kind == "timeline":
            return {"timeline gap"}, None
        return {"missing"}, "key"
    if encrypted:
        return ENCRYPTED_READ[how], "key"
    return PLAIN[(how, kind)], "key"


def named(problems, bucket: str, target: Target, key_rule: str | None) -> list:
    """The problems that name the damaged object (or, for a deleted document, the place it was)."""
    if key_rule == "key":
        return [p for p in problems if p.key == f"{bucket}/{target.key}"]
    prefix = keys.bases_prefix(GROUP) if target.kind == "base" else keys.timeline_prefix(GROUP)
    return [p for p in problems if p.key.startswith(f"{bucket}/{prefix}")]
