"""plan_batch: the pure decision on one batch."""

from __future__ import annotations

import pytest

from services.ingest.batches import plan_batch
from services.ingest.errors import BadSequence, ForeignVolume, MalformedBatch, SequenceGap
from services.ingest.state import GroupState
from shared.frames import Codec, Kind, Record, data_record, decode_batch, encode_batch

from .ingest_helpers import batch, records

GROUP = GroupState("g1", {"disk0": 1 << 30})


def test_new_batch_is_passed_through_unchanged():
    body = batch(1, 3)
    plan = plan_batch(body, GROUP)
    assert plan.data == body and (plan.first_seq, plan.last_seq, plan.records) == (1, 3, 3)
    assert plan.last_timestamp_ns == records(3, 3)[0].timestamp_ns


@pytest.mark.parametrize("acked,expect", [(3, None), (5, None), (1, (2, 3)), (0, (1, 3))])
def test_continuity(acked, expect):
    gs = GroupState("g1", {"disk0": 1 << 30}, acked_through=acked)
    plan = plan_batch(batch(1, 3), gs)
    if expect is None:
        assert plan.data is None and plan.records == 0
    else:
        assert (plan.first_seq, plan.last_seq) == expect
        assert [r.sequence for r in decode_batch(plan.data)] == list(range(expect[0], expect[1] + 1))


def test_gap_names_expected():
    with pytest.raises(SequenceGap) as ei:
        plan_batch(batch(7, 8), GroupState("g1", {"disk0": 1 << 30}, acked_through=5))
    assert ei.value.expected == 6 and "resend from sequence 6" in str(ei.value)


def test_zero_sequence_refused():
    with pytest.raises(BadSequence):
        plan_batch(encode_batch([data_record("disk0", 0, 1, 0, b"x")]), GROUP)


def test_zstd_payload_that_does_not_decompress():
    bad = Record("disk0", 1, 1, 0, 4096, Kind.DATA, Codec.ZSTD, b"not zstd at all")
    with pytest.raises(MalformedBatch, match="zstd"):
        plan_batch(encode_batch([bad]), GROUP)


def test_compressed_batch_accepted():
    rec = data_record("disk0", 1, 1, 0, b"a" * 65536, compress=True)
    assert rec.codec == Codec.ZSTD
    assert plan_batch(encode_batch([rec]), GROUP).records == 1


def test_bookmark_offset_not_checked_against_size():
    bm = Record("disk0", 1, 1, 0, 0, Kind.BOOKMARK, payload=b"name")
    assert plan_batch(encode_batch([bm]), GroupState("g1", {"disk0": 512})).records == 1


def test_trim_past_end_refused():
    tr = Record("disk0", 1, 1, 0, 1024, Kind.TRIM)
    with pytest.raises(ForeignVolume, match="past the end"):
        plan_batch(encode_batch([tr]), GroupState("g1", {"disk0": 512}))
