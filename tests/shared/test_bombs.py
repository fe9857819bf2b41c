"""Decompression bombs never allocate: every reader refuses them with its codec's own error.

A bomb is ~8 KB of zstd that inflates to 256 MiB. Each path that inflates a
payload from outside the process (frames, journal segments, recovery's
synthesis, rollup, base chunks, instant access, verify) must refuse it while
its peak Python-heap growth stays under ``BOUND``.
"""

from __future__ import annotations

import pytest

from services.recovery import synth
from services.recovery.instant.blockmap import Extent
from services.recovery.instant.reader import PointBackend
from services.recovery.verify_reads import read_chunk_checked
from shared import bases as B
from shared import keys
from shared.frames import MAX_RECORD_BYTES, Codec, FrameError, Kind, Record, decode_batch, encode_batch
from shared.inflate import InflateError, inflate
from shared.journal import JournalError, encode_segment, iter_segment_records
from shared.objectstore.memory import MemoryObjectStore

from .bombs import BOMB_BYTES, bomb_batch, bomb_payload, peak_growth, raw_batch, raw_record

BOUND = 32 << 20


def _bomb_record(declared: int = MAX_RECORD_BYTES, content_size: bool = True) -> Record:
    """A record that passes frame decoding (declared length within the cap) and inflates to 256 MiB."""
    return decode_batch(raw_batch(raw_record("disk0", 1, 0, declared, bomb_payload(BOMB_BYTES, content_size))))[0]


def test_a_record_declaring_more_than_a_batch_is_refused_by_the_frame_codec():
    with pytest.raises(FrameError, match="limit"):
        decode_batch(bomb_batch(declared=BOMB_BYTES))
    with pytest.raises(FrameError, match="limit"):
        decode_batch(raw_batch(raw_record("disk0", 1, 0, MAX_RECORD_BYTES + 1, b"x" * 16)))


def test_the_encoder_refuses_a_record_over_the_cap():
    rec = Record("disk0", 1, 1, 0, MAX_RECORD_BYTES + 1, Kind.DATA, Codec.ZSTD, bomb_payload(MAX_RECORD_BYTES + 1))
    with pytest.raises(FrameError, match="limit"):
        encode_batch([rec])


def test_zeroes_and_trims_may_still_cover_large_ranges():
    big = Record("disk0", 1, 1, 0, 1 << 31, Kind.TRIM)
    assert decode_batch(encode_batch([big]))[0].length == 1 << 31


@pytest.mark.parametrize("content_size", [True, False], ids=["declared", "undeclared"])
def test_record_data_refuses_a_bomb_without_allocating_it(content_size):
    rec = _bomb_record(content_size=content_size)
    with peak_growth() as peak, pytest.raises(FrameError):
        rec.data()
    assert peak[0] < BOUND, f"inflating the bomb grew the heap by {peak[0] >> 20} MiB"


@pytest.mark.parametrize("content_size", [True, False], ids=["declared", "undeclared"])
def test_inflate_is_bounded_and_raises_the_callers_error(content_size):
    with peak_growth() as peak, pytest.raises(JournalError, match="limit"):
        inflate(bomb_payload(BOMB_BYTES, content_size), 1 << 20, JournalError, "test payload")
    assert peak[0] < BOUND
    with pytest.raises(InflateError):
        inflate(b"not zstd at all", 1 << 20)


def test_journal_segment_with_an_oversized_record_is_a_journal_error():
    seg = encode_segment([bomb_batch(declared=BOMB_BYTES)])
    with peak_growth() as peak, pytest.raises(JournalError, match="limit"):
        list(iter_segment_records(seg, "groups/g/journal/1-1.seg"))
    assert peak[0] < BOUND


@pytest.mark.parametrize("content_size", [True, False], ids=["declared", "undeclared"])
def test_recovery_synthesis_refuses_a_bomb_record(content_size):
    rec = _bomb_record(content_size=content_size)
    with peak_growth() as peak, pytest.raises(JournalError):
        synth._payload(rec, "groups/g/journal/1-1.seg")
    assert peak[0] < BOUND


def test_rollup_refuses_a_bomb_record():
    from services.retention.rollup import _State

    store = MemoryObjectStore()
    store.ensure_bucket("b")
    state = _State(store, "b", {"disk0": 1 << 30}, 1 << 20, None, 64 << 20)
    with peak_growth() as peak, pytest.raises(FrameError):
        state.apply(_bomb_record())
    assert peak[0] < BOUND


def test_base_chunk_bomb_is_a_base_error_and_verify_reports_it():
    store = MemoryObjectStore()
    store.ensure_bucket("b")
    cid = "ab" * 32
    store.put("b", keys.chunk_key(cid), bomb_payload())
    with peak_growth() as peak, pytest.raises(B.BaseError):
        B.read_chunk(store, "b", cid, length=1 << 20)
    with pytest.raises(B.BaseError):
        B.read_chunk(store, "b", cid)  # no length: at most the largest chunk size a base may have
    assert peak[0] < BOUND
    with peak_growth() as peak:
        what, _detail = read_chunk_checked(store, "b", cid, 1 << 20)
    assert what == "corrupt" and peak[0] < BOUND


def test_instant_access_refuses_a_bomb_payload():
    rec = raw_record("disk0", 1, 0, MAX_RECORD_BYTES, bomb_payload())
    e = Extent(0, MAX_RECORD_BYTES, "groups/g/journal/1-1.seg", 0, len(rec), int(Codec.ZSTD), 0, MAX_RECORD_BYTES, 1)
    with peak_growth() as peak, pytest.raises(JournalError):
        PointBackend._decode(None, e, rec)
    assert peak[0] < BOUND
