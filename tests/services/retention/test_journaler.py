"""Journaler: dedupe, gap refusal, flush order and content (MemoryObjectStore)."""

from __future__ import annotations

from shared import keys
from shared.frames import encode_batch
from shared.journal import iter_segment_records, last_sequence, read_timeline
from shared.objectstore.memory import MemoryObjectStore
from services.retention.journaler import Journaler, Outcome
from tests.services.retention.helpers import batches_of, bookmark, random_records

BUCKET = "dialback-acme"


def _j(store=None, **kw) -> Journaler:
    return Journaler(store or MemoryObjectStore(), max_age=1.0, clock=lambda: 0.0, **kw)


def _segment_records(store, entry):
    return list(iter_segment_records(store.get(BUCKET, entry.segment)))


def test_flush_writes_segment_then_timeline_with_exact_records():
    store = MemoryObjectStore()
    j = _j(store)
    recs = random_records(50, seed=3)
    for i, b in enumerate(batches_of(recs, 7)):
        assert j.offer("acme", "g1", b, i) is Outcome.BUFFERED
    entry, tokens = j.flush("acme", "g1")
    assert tokens == list(range(8))
    assert (entry.first_seq, entry.last_seq) == (1, 50)
    assert entry.segment == keys.segment_key("g1", 1, 50)
    got = _segment_records(store, entry)
    assert [(r.sequence, r.volume, r.offset, r.length, r.kind, r.data()) for r in got] == \
           [(r.sequence, r.volume, r.offset, r.length, r.kind, r.data()) for r in recs]
    assert [b.sequence for b in entry.bookmarks] == [r.sequence for r in recs if r.kind.name == "BOOKMARK"]
    assert read_timeline(store, BUCKET, "g1") == [entry]


def test_redelivery_and_overlap_drop_held_sequences():
    store = MemoryObjectStore()
    j = _j(store)
    recs = random_records(20, seed=4)
    j.offer("acme", "g1", encode_batch(recs[:10]), "a")
    j.flush("acme", "g1")
    # A restarted journaler learns position 10 from the timeline.
    j2 = _j(store)
    assert j2.next_expected("acme", "g1") == 11
    assert j2.offer("acme", "g1", encode_batch(recs[:10]), "dup") is Outcome.DUPLICATE
    assert j2.offer("acme", "g1", encode_batch(recs[5:15]), "overlap") is Outcome.BUFFERED
    assert j2.offer("acme", "g1", encode_batch(recs[10:15]), "dup2") is Outcome.DUPLICATE
    entry, tokens = j2.flush("acme", "g1")
    assert tokens == ["overlap"]
    assert (entry.first_seq, entry.last_seq) == (11, 15)
    assert [r.sequence for r in _segment_records(store, entry)] == list(range(11, 16))


def test_gap_is_refused_and_nothing_kept():
    store = MemoryObjectStore()
    j = _j(store)
    recs = random_records(10, seed=5)
    assert j.offer("acme", "g1", encode_batch(recs[3:6]), "gap") is Outcome.GAP
    assert j.flush("acme", "g1") == (None, [])
    assert last_sequence(store, BUCKET, "g1") == 0
    assert j.offer("acme", "g1", encode_batch(recs[:3]), "ok") is Outcome.BUFFERED
    assert j.stats["gaps"] == 1


def test_corrupt_message_refused():
    j = _j()
    bad = bytearray(encode_batch(random_records(3)))
    bad[-1] ^= 0xFF
    assert j.offer("acme", "g1", bytes(bad), "x") is Outcome.CORRUPT


def test_due_by_size_and_age():
    now = [0.0]
    j = Journaler(MemoryObjectStore(), max_bytes=64 << 10, max_age=1.0, clock=lambda: now[0])
    recs = random_records(40, seed=6)
    j.offer("acme", "g1", encode_batch(recs[:1]), 1)
    assert j.due() == []
    now[0] = 1.5
    assert j.due() == [("acme", "g1")]
    j.flush("acme", "g1")
    for i, b in enumerate(batches_of(recs, 1)):
        j.offer("acme", "g2", b, i)
        if j.full("acme", "g2"):
            break
    assert j.full("acme", "g2") and ("acme", "g2") in j.due()


def test_compression_shrinks_compressible_and_reads_back():
    store = MemoryObjectStore()
    j = _j(store, compress=True)
    from shared.frames import data_record
    recs = [data_record("disk0", 1 + i, 10 + i, i * 65536, bytes([i]) * 65536) for i in range(10)]
    j.offer("acme", "g1", encode_batch(recs), 0)
    entry, _ = j.flush("acme", "g1")
    assert entry.size < 10 * 65536 // 4
    assert [r.data() for r in _segment_records(store, entry)] == [r.data() for r in recs]


def test_forget_drops_buffer_and_position():
    store = MemoryObjectStore()
    j = _j(store)
    recs = random_records(5, seed=7)
    j.offer("acme", "g1", encode_batch(recs), "t")
    assert j.forget({("acme", "g1")}) == ["t"]
    assert j.needs_load("acme", "g1")
    assert j.flush("acme", "g1") == (None, [])


def test_bookmark_in_timeline_entry():
    store = MemoryObjectStore()
    j = _j(store)
    from shared.frames import data_record
    recs = [data_record("disk0", 1, 5, 0, b"x" * 512), bookmark("disk0", 2, 6, "dialback.initial-sync-complete")]
    j.offer("acme", "g1", encode_batch(recs), 0)
    entry, _ = j.flush("acme", "g1")
    assert [(b.name, b.sequence, b.timestamp_ns) for b in entry.bookmarks] == \
           [("dialback.initial-sync-complete", 2, 6)]


def test_compress_probe_skips_incompressible_and_keeps_original_bytes():
    import os

    from shared.frames import Codec, data_record, encode_batch
    from shared.journal import compress_record, iter_segment_records

    rand = data_record("disk0", 1, 1, 0, os.urandom(256 << 10))
    text = data_record("disk0", 2, 2, 0, b"dialback " * (256 << 10 // 9) + b"x" * ((256 << 10) % 9))
    assert compress_record(rand) is rand                      # the probe said no: not compressed whole
    assert compress_record(text).codec == Codec.ZSTD
    store = MemoryObjectStore()
    j = Journaler(store, compress=True)
    msg = encode_batch([rand])
    j.next_expected("acme", "g1")
    assert j.offer("acme", "g1", msg, "t1").value == "buffered"
    sealed = j.seal("acme", "g1")
    assert j.encode(sealed) == [msg]                          # stored byte for byte, no re-encode
    j.write_segment(sealed)
    j.write_entry(sealed)
    body = store.get("dialback-acme", sealed.entry.segment)
    assert [r.payload for r in iter_segment_records(body)] == [rand.payload]


def test_failed_flush_keeps_buffer_and_later_records_join_it():
    from shared.objectstore import TransientStoreError

    class FailSegmentsOnce(MemoryObjectStore):
        fail = True

        def put(self, bucket, key, data):
            if self.fail and key.endswith(".json"):
                self.fail = False
                raise TransientStoreError("down (test)")
            super().put(bucket, key, data)

    store = FailSegmentsOnce()
    j = Journaler(store)
    recs = random_records(20, seed=11)
    msgs = batches_of(recs, 5)
    j.next_expected("acme", "g1")
    for i, m in enumerate(msgs[:2]):
        j.offer("acme", "g1", m, i)
    try:
        j.flush("acme", "g1")
        raise AssertionError("the timeline PUT should have failed")
    except TransientStoreError:
        pass
    for i, m in enumerate(msgs[2:], start=2):
        assert j.offer("acme", "g1", m, i) is Outcome.BUFFERED
    entry, tokens = j.flush("acme", "g1")
    assert (entry.first_seq, entry.last_seq) == (1, 20) and tokens == [0, 1, 2, 3]
    got = list(iter_segment_records(store.get("dialback-acme", entry.segment)))
    assert [r.sequence for r in got] == list(range(1, 21))
    def shape(rs):
        return [(r.volume, r.offset, r.length, r.kind) for r in rs]
    assert shape(got) == shape(recs)
