"""Synthesis equals a reference model at every point, for every volume of a group."""

from __future__ import annotations

import random

import pytest

from services.recovery.planner import At
from services.recovery.service import Recovery
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK, JournalError
from shared.objectstore import ObjectNotFound
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.journal_builder import reference, write_journal
from tests.services.retention.helpers import bookmark, random_records

VOLS = {"disk0": 1 << 20, "disk1": 1 << 19}


def _journal(seed: int, n: int = 400, compress: bool = True):
    rng = random.Random(seed)
    # Initial sync: every block of both volumes, then the bookmark, then random writes.
    recs, seq = [], 1
    for vol, size in VOLS.items():
        for off in range(0, size, 65536):
            recs.append(data_record(vol, seq, seq, off, rng.randbytes(1024) * 64))
            seq += 1
    recs.append(bookmark("disk0", seq, seq, INITIAL_SYNC_BOOKMARK))
    sync_point = seq
    tail = random_records(n, volumes=tuple(VOLS), size=min(VOLS.values()), start=seq + 1, seed=seed, ts0=0)
    recs += tail
    store = MemoryObjectStore()
    write_journal(store, "acme", "g1", VOLS, recs, per_batch=7, per_segment=3, compress=compress)
    return store, recs, sync_point


@pytest.mark.parametrize("seed,compress", [(1, True), (2, False), (3, True)])
def test_every_volume_matches_reference_at_random_points(tmp_path, seed, compress):
    store, recs, sync = _journal(seed, compress=compress)
    rec = Recovery(store, work_dir=tmp_path, prefetch=2)
    last = recs[-1].sequence
    points = sorted({sync, last, *random.Random(seed).sample(range(sync, last + 1), 5)})
    for n in points:
        plan = rec.plan("acme", "g1", "all", At.of(sequence=n))
        outs = {v: tmp_path / f"{v}-{n}.img" for v in plan.volumes}
        rec.to_files(plan, outs)
        want = reference(VOLS, recs, n)
        for v in VOLS:
            got = outs[v].read_bytes()
            assert len(got) == VOLS[v]
            assert got == want[v], f"volume {v} differs at sequence {n}"


def test_single_volume_at_time_and_bookmark(tmp_path):
    store, recs, sync = _journal(4)
    rec = Recovery(store, work_dir=tmp_path)
    mid = recs[sync + 50]
    plan = rec.plan("acme", "g1", "disk1", At.of(timestamp_ns=mid.timestamp_ns))
    assert plan.point.sequence == mid.sequence and plan.volumes == ["disk1"]
    out = tmp_path / "d1.img"
    rec.to_files(plan, {"disk1": out})
    assert out.read_bytes() == reference(VOLS, recs, mid.sequence)["disk1"]
    plan = rec.plan("acme", "g1", "disk0", At.of(bookmark=INITIAL_SYNC_BOOKMARK))
    rec.to_files(plan, {"disk0": out})
    assert out.read_bytes() == reference(VOLS, recs, sync)["disk0"]


def test_to_objects_round_trip(tmp_path):
    store, recs, sync = _journal(5, n=100)
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", "g1", "all", At.of(sequence=sync + 60))
    res = rec.to_objects(plan, digest=True)
    want = reference(VOLS, recs, sync + 60)
    for item in res.volumes:
        assert store.get(item["bucket"], item["key"]) == want[item["volume"]]
    assert list(tmp_path.iterdir()) == []  # temporary images removed


def test_missing_segment_fails_loudly(tmp_path):
    store, recs, sync = _journal(6, n=50)
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", "g1", "disk0", At.of(sequence=recs[-1].sequence))
    store.delete("dialback-acme", plan.journal.entries[1].segment)
    with pytest.raises(ObjectNotFound):
        rec.to_files(plan, {"disk0": tmp_path / "x.img"})
    assert not (tmp_path / "x.img").exists()


def test_truncated_segment_is_a_journal_error(tmp_path):
    store, recs, sync = _journal(7, n=50)
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", "g1", "disk0", At.of(sequence=recs[-1].sequence))
    key = plan.journal.entries[0].segment
    store.put("dialback-acme", key, store.get("dialback-acme", key)[:-10])
    with pytest.raises(JournalError):
        rec.to_files(plan, {"disk0": tmp_path / "x.img"})


def test_image_is_sparse(tmp_path):
    store = MemoryObjectStore()
    recs = [data_record("disk0", 1, 1, 0, b"x" * 4096), bookmark("disk0", 2, 2, INITIAL_SYNC_BOOKMARK)]
    write_journal(store, "acme", "g1", {"disk0": 1 << 30}, recs)
    rec = Recovery(store, work_dir=tmp_path)
    out = tmp_path / "big.img"
    rec.to_files(rec.plan("acme", "g1", "disk0", At.of(sequence=2)), {"disk0": out})
    st = out.stat()
    assert st.st_size == 1 << 30 and st.st_blocks * 512 < 1 << 20


def test_to_objects_exact_key_and_prefix(tmp_path):
    store, recs, sync = _journal(8, n=30)
    rec = Recovery(store, work_dir=tmp_path)
    want = reference(VOLS, recs, sync + 10)
    one = rec.to_objects(rec.plan("acme", "g1", "disk1", At.of(sequence=sync + 10)), "recoveries/images/d1.raw")
    assert [v["key"] for v in one.volumes] == ["recoveries/images/d1.raw"]
    assert store.get("dialback-acme", "recoveries/images/d1.raw") == want["disk1"]
    both = rec.to_objects(rec.plan("acme", "g1", "all", At.of(sequence=sync + 10)), "recoveries/dr-test/")
    assert sorted(v["key"] for v in both.volumes) == ["recoveries/dr-test/disk0.img", "recoveries/dr-test/disk1.img"]
