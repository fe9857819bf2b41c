from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import frames
from shared.frames import (
    Codec, CorruptFrame, FrameError, Kind, OversizedFrame, Record, TruncatedFrame, UnsupportedVersion,
    data_record, decode_batch, encode_batch,
)


def _records(n=3, size=4096):
    return [data_record("disk0", i + 1, 1_000 + i, i * size, os.urandom(size)) for i in range(n)]


def test_roundtrip_all_kinds():
    recs = [
        data_record("disk0", 1, 10, 0, b"a" * 4096, compress=True),
        Record("disk0", 2, 11, 8192, 4096, Kind.ZEROES),
        Record("disk1", 3, 12, 0, 65536, Kind.TRIM),
        Record("disk0", 4, 13, 0, 0, Kind.BOOKMARK, Codec.RAW, "before-upgrade".encode()),
    ]
    out = decode_batch(encode_batch(recs))
    assert out == recs
    assert out[0].codec == Codec.ZSTD and out[0].data() == b"a" * 4096
    assert out[3].data() == b"before-upgrade"


def test_empty_batch_roundtrips():
    assert decode_batch(encode_batch([])) == []


def test_oversized_batch_refused_on_encode_and_decode():
    big = [data_record("v", i, i, 0, os.urandom(300_000)) for i in range(4)]
    with pytest.raises(OversizedFrame):
        encode_batch(big)
    with pytest.raises(OversizedFrame):
        decode_batch(b"\0" * (frames.MAX_BATCH_BYTES + 1))


def test_truncated_frame_names_the_problem():
    buf = encode_batch(_records())
    with pytest.raises(TruncatedFrame, match="shorter than"):
        decode_batch(buf[:10])
    with pytest.raises(TruncatedFrame, match="body is"):
        decode_batch(buf[:-1])


def test_flipped_payload_byte_is_a_crc_error():
    buf = bytearray(encode_batch(_records()))
    buf[-5] ^= 0x40
    with pytest.raises(CorruptFrame, match="CRC32C mismatch"):
        decode_batch(bytes(buf))


def test_bad_magic_and_version():
    buf = bytearray(encode_batch(_records(1)))
    bad = bytes(b"XXXX" + buf[4:])
    with pytest.raises(CorruptFrame, match="magic"):
        decode_batch(bad)
    head = bytearray(buf[:16])
    head[4] = 9
    reheader = bytes(head) + struct.pack("<I", frames._crc(bytes(head))) + bytes(buf[20:])
    with pytest.raises(UnsupportedVersion, match="version 9"):
        decode_batch(reheader)


def test_payload_length_must_match_for_raw_data():
    with pytest.raises(FrameError):
        encode_batch([Record("v", 1, 1, 0, 10, Kind.DATA, Codec.RAW, b"short")])


def test_zstd_payload_that_lies_about_length():
    rec = data_record("v", 1, 1, 0, b"z" * 1000, compress=True)
    liar = Record(rec.volume, 1, 1, 0, 999, Kind.DATA, Codec.ZSTD, rec.payload)
    (decoded,) = decode_batch(encode_batch([liar]))
    with pytest.raises(CorruptFrame, match="decompresses"):
        decoded.data()


_volume = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_record = st.builds(
    lambda vol, seq, ts, off, data, kind, compress: (
        data_record(vol, seq, ts, off, data, compress=compress) if kind == Kind.DATA
        else Record(vol, seq, ts, off, len(data), kind)
    ),
    _volume, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**63),
    st.binary(max_size=2048), st.sampled_from([Kind.DATA, Kind.ZEROES, Kind.TRIM]), st.booleans(),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record, max_size=12))
def test_property_roundtrip(recs):
    assert decode_batch(encode_batch(recs)) == recs


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_record, min_size=1, max_size=6), st.data())
def test_property_mutation_decodes_same_or_raises_codec_error(recs, data):
    buf = bytearray(encode_batch(recs))
    op = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if op == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] ^= data.draw(st.integers(1, 255))
    elif op == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif op == "extend":
        buf += data.draw(st.binary(min_size=1, max_size=16))
    else:
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        out = decode_batch(bytes(buf))
    except FrameError:
        return
    assert out == recs


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_property_garbage_never_raises_anything_else(blob):
    try:
        decode_batch(blob)
    except FrameError:
        pass
