"""Base-aware block map: reads equal the reference at points served from a base plus the journal after it."""

from __future__ import annotations

from services.recovery.instant.blockmap import build
from services.recovery.instant.reader import PointBackend
from services.recovery.planner import At
from services.recovery.service import Recovery
from services.retention.policy import HOUR_NS
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.instant.history import GROUP, POLICY, VOLUMES, history


class CountingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.ranges: list[tuple[str, int]] = []

    def get(self, bucket, key):
        self.gets.append(key)
        return super().get(bucket, key)

    def get_range(self, bucket, key, offset, length):
        self.ranges.append((key, length))
        return MemoryObjectStore.get(self, bucket, key)[offset: offset + length]


def test_points_from_bases_read_exact(tmp_path):
    store = CountingStore()
    sim = history(store, "acme")
    rec = Recovery(store, work_dir=tmp_path)
    pts = rec.points("acme", GROUP)
    targets = [At.of(sequence=pts["earliest"]["sequence"]), At.of(sequence=pts["latest"]["sequence"]),
               At.of(timestamp_ns=POLICY.floor_ns(sim.now) + HOUR_NS // 2)]
    targets += [At.of(sequence=r["sequence"]) for r in pts["retained"][:2]]
    served_from_base = 0
    for at in targets:
        for v in VOLUMES:
            plan = rec.plan("acme", GROUP, v, at)
            store.gets.clear()
            bmap = build(store, plan.journal, plan.point, v, plan.base)
            segs = [k for k in store.gets if k.endswith(".seg")]
            # Only the journal after the base is read to build the map.
            floor = plan.base.sequence if plan.base else 0
            assert len(segs) == len(plan.journal.entries_between(floor, plan.point.sequence)) == bmap.segments
            want = sim.reference(plan.point.sequence)[v]
            be = PointBackend(store, plan.journal.bucket, bmap)
            assert be.read(0, VOLUMES[v]) == want, f"{v} at {at}"
            assert be.read(12345, 70000) == want[12345:82345]
            served_from_base += plan.base is not None
    assert served_from_base >= 4


def test_reads_fetch_payload_ranges_not_segments(tmp_path):
    store = CountingStore()
    history(store, "acme")
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", GROUP, "disk0", At.of(sequence=rec.points("acme", GROUP)["latest"]["sequence"]))
    bmap = build(store, plan.journal, plan.point, "disk0", plan.base)
    assert bmap.extents, "the history writes after the base"
    store.gets.clear()
    be = PointBackend(store, plan.journal.bucket, bmap)
    e = bmap.extents[len(bmap.extents) // 2]
    be.read(e.start, min(4096, e.end - e.start))
    assert not [k for k in store.gets if k.endswith(".seg")], "a read fetched a whole segment"
    assert store.ranges and all(n < 1 << 20 for _, n in store.ranges)
    before = len(store.ranges)
    be.read(e.start, min(4096, e.end - e.start))
    assert len(store.ranges) == before, "the decoded payload cache was not used"


def test_segment_rewritten_under_the_map_reads_eio_never_wrong_bytes(tmp_path):
    import errno

    import pytest

    store = MemoryObjectStore()
    history(store, "acme")
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", GROUP, "disk0", At.of(sequence=rec.points("acme", GROUP)["latest"]["sequence"]))
    bmap = build(store, plan.journal, plan.point, "disk0", plan.base)
    e = max(bmap.extents, key=lambda x: x.end - x.start)
    body = bytearray(store.get(plan.journal.bucket, e.segment))
    body[e.pos + e.stored - 1] ^= 0xFF  # the record's last payload byte
    store.put(plan.journal.bucket, e.segment, bytes(body))
    be = PointBackend(store, plan.journal.bucket, bmap)
    with pytest.raises(OSError) as err:
        be.read(e.start, e.end - e.start)
    assert err.value.errno == errno.EIO and "not record" in str(err.value)
