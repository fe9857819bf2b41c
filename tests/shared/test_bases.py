"""Base documents, chunks and leases (shared formats every reader relies on)."""

from __future__ import annotations

import pytest

from shared import bases as B
from shared import keys, leases
from shared.objectstore.memory import MemoryObjectStore


@pytest.fixture()
def store():
    s = MemoryObjectStore()
    s.ensure_bucket("b")
    return s


def test_chunks_are_content_addressed_and_deduplicated(store):
    a = B.put_chunk(store, "b", b"x" * 4096)
    assert B.put_chunk(store, "b", b"x" * 4096) == a == B.chunk_id(b"x" * 4096)
    assert B.put_chunk(store, "b", bytes(4096)) is None  # zero chunks are not stored
    assert [i.key for i in store.list("b", keys.CHUNKS_PREFIX)] == [keys.chunk_key(a)]
    assert B.read_chunk(store, "b", a) == b"x" * 4096


def test_corrupt_or_missing_chunk_is_named(store):
    a = B.put_chunk(store, "b", b"y" * 1000)
    other = B.put_chunk(store, "b", b"z" * 1000)
    store.put("b", keys.chunk_key(a), store.get("b", keys.chunk_key(other)))
    with pytest.raises(B.BaseError, match="does not match its SHA-256"):
        B.read_chunk(store, "b", a)
    store.delete("b", keys.chunk_key(a))
    with pytest.raises(B.BaseError, match="is missing"):
        B.read_chunk(store, "b", a)


def test_base_document_roundtrip_and_latest_at(store):
    c = B.put_chunk(store, "b", b"q" * 100)
    for seq in (10, 20):
        B.put_base(store, "b", B.Base("g", seq, seq * 7, 64, {"v": B.VolumeChunks(100, (c, None))}, (seq * 9,)))
    assert B.latest_base_at(store, "b", "g", 9) is None
    got = B.latest_base_at(store, "b", "g", 19)
    assert (got.sequence, got.timestamp_ns, got.points_ns) == (10, 70, (90,))
    assert B.read_volume_chunk(store, "b", got, "v", 1) == bytes(36)  # short zero tail chunk
    with pytest.raises(B.BaseError, match="lists 1 chunks"):
        B.Base.from_json("g", b'{"sequence":1,"timestamp_ns":1,"chunk_size":64,"volumes":{"v":{"size":100,'
                         b'"chunks":[null]}}}', "x")


def test_lease_lifecycle(store):
    t = [100.0]
    lease = leases.acquire(store, "b", "g", 5, 5, ttl_s=10, holder="t", clock=lambda: t[0])
    assert [x.base_seq for x in leases.live_leases(store, "b", "g", now_ns=int(105e9))] == [5]
    assert leases.live_leases(store, "b", "g", now_ns=int(111e9)) == []
    t[0] = 108.0
    lease.renew()
    assert len(leases.live_leases(store, "b", "g", now_ns=int(111e9))) == 1
    with lease:
        pass
    assert list(store.list("b", keys.leases_prefix("g"))) == []
    with pytest.raises(leases.LeaseError):
        lease.renew()
    with pytest.raises(leases.LeaseError):
        leases.acquire(store, "b", "g", -1, 0)


def test_read_range_spans_chunks_and_zero_chunks(store):
    a, b = b"a" * 64, b"b" * 36
    base = B.Base("g", 1, 1, 64, {"v": B.VolumeChunks(164, (B.put_chunk(store, "b", a), None, B.put_chunk(store, "b", b)))})
    whole = a + bytes(64) + b
    for off, n in ((0, 164), (10, 100), (63, 2), (128, 36), (164, 0)):
        assert B.read_range(store, "b", base, "v", off, n) == whole[off: off + n]
    with pytest.raises(B.BaseError, match="outside volume"):
        B.read_range(store, "b", base, "v", 100, 65)
