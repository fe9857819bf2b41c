"""The decoders that face the network, as fuzz targets: every input decodes or raises the codec's own error.

Used by tests/shared/test_fuzz_decoders.py (a bounded number of examples in the
suite) and bench/fuzz.py (a long run, ``--examples N``). Each target is
``(strategy, check)``: ``check(input)`` runs the decoder and returns normally
when it decoded or raised one of the codec's documented errors; any other
exception propagates and fails the property.

Inputs are random bytes, mutations of valid encodings (bit flips, truncation,
extension, splices, header and record length-field edits with their CRCs
fixed up so the decoder gets past the checksums) and hand-framed records with
arbitrary field values (kind, codec, lengths, volume bytes, zstd payloads
including decompression bombs).
"""

from __future__ import annotations

import struct

import crc32c
import zstandard
from hypothesis import strategies as st

from services.ingest.batches import plan_body, plan_single
from services.ingest.errors import IngestError
from services.ingest.state import GroupState
from shared.bodies import BodyError, encode_body, split_body
from shared.crypto.transport import TransportError, decode_key, open_sealed, seal
from shared.frames import MAX_RECORD_BYTES, FrameError, Kind, Record, data_record, decode_batch, encode_batch
from shared.inflate import InflateError, inflate
from shared.journal import JournalError, iter_segment_records

from .bombs import bomb_payload, peak_growth, raw_batch

KEY = bytes(range(32))
TENANT, GROUP = "acme", "g1"
VOLUMES = {"disk0": 1 << 30, "disk1": 1 << 20}
_HEAD = struct.Struct("<4sBBHII")

# -- valid encodings ---------------------------------------------------------

_payload = st.one_of(st.binary(max_size=512), st.builds(lambda n: bytes(n), st.integers(0, 8192)))


@st.composite
def records(draw, first: int | None = None, max_size: int = 5, min_seq: int = 1) -> list[Record]:
    """Consecutive, valid records of the group's volumes (DATA raw or zstd, ZEROES, TRIM, BOOKMARK)."""
    seq = draw(st.integers(min_seq, 50)) if first is None else first
    ts = draw(st.integers(0, 1 << 40))
    out = []
    for _ in range(draw(st.integers(1, max_size))):
        vol = draw(st.sampled_from(sorted(VOLUMES)))
        kind = draw(st.sampled_from(list(Kind)))
        data = draw(_payload)
        off = draw(st.integers(0, VOLUMES[vol] - len(data)))
        if kind == Kind.DATA:
            out.append(data_record(vol, seq, ts, off, data, compress=draw(st.booleans())))
        elif kind == Kind.BOOKMARK:
            out.append(Record(vol, seq, ts, 0, 0, kind, payload=data[:64]))
        else:
            out.append(Record(vol, seq, ts, off, len(data), kind))
        seq, ts = seq + 1, ts + draw(st.integers(0, 1000))
    return out



@st.composite
def valid_bodies(draw, min_seq: int = 1) -> bytes:
    """A multi-batch body: 1..3 batches continuing one another."""
    batches, first = [], draw(st.integers(min_seq, 50))
    for _ in range(draw(st.integers(1, 3))):
        recs = draw(records(first=first, max_size=3))
        batches.append(encode_batch(recs))
        first = recs[-1].sequence + 1
    return encode_body(batches)


# -- mutations ---------------------------------------------------------------

_INTERESTING_U32 = [0, 1, 2, 19, 20, 21, 64, 65, 4095, 4096, MAX_RECORD_BYTES, MAX_RECORD_BYTES + 1,
                    1 << 24, 1 << 28, (1 << 31) - 1, 1 << 31, (1 << 32) - 1]


def _fix_header_crc(buf: bytearray) -> None:
    if len(buf) >= 20:
        buf[16:20] = struct.pack("<I", crc32c.crc32c(bytes(buf[:16])))


def _record_spans(buf: bytes) -> list[tuple[int, int, int]]:
    """(start, crc offset, end) of each record of a valid batch."""
    spans, pos = [], 20
    while pos < len(buf):
        vlen = buf[pos]
        fixed_end = pos + 1 + vlen + 34
        (plen,) = struct.unpack_from("<I", buf, fixed_end - 4)
        spans.append((pos, fixed_end, fixed_end + 4 + plen))
        pos = fixed_end + 4 + plen
    return spans


@st.composite
def mutated(draw, valid: st.SearchStrategy[bytes], framed: bool = True) -> bytes:
    """A valid encoding changed once; ``framed``: it is a v1 batch, so field edits apply."""
    buf = bytearray(draw(valid))
    ops = ["flip", "truncate", "extend", "splice", "overwrite"] + (["header", "field"] if framed else [])
    op = draw(st.sampled_from(ops))
    if op == "flip":
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << draw(st.integers(0, 7))
    elif op == "truncate":
        buf = buf[: draw(st.integers(0, len(buf) - 1))]
    elif op == "extend":
        buf += draw(st.binary(min_size=1, max_size=64))
    elif op == "splice":
        i = draw(st.integers(0, len(buf)))
        buf[i:i] = draw(st.binary(min_size=1, max_size=16))
    elif op == "overwrite":
        i = draw(st.integers(0, len(buf) - 1))
        chunk = draw(st.binary(min_size=1, max_size=8))
        buf[i: i + len(chunk)] = chunk
    elif op == "header":  # count or body_len edited, header CRC recomputed: the decoder reads on
        field = draw(st.sampled_from([12, 8, 4, 5]))  # body_len, count, version, reserved
        if field in (4, 5):
            buf[field] = draw(st.integers(0, 255))
        else:
            buf[field: field + 4] = struct.pack("<I", draw(st.sampled_from(_INTERESTING_U32)
                                                                 | st.integers(0, (1 << 32) - 1)))
        _fix_header_crc(buf)
    else:  # a record's length, payload_len, kind, codec or volume length edited, its CRC recomputed
        spans = _record_spans(bytes(buf))
        start, crc_at, end = spans[draw(st.integers(0, len(spans) - 1))]
        vlen = buf[start]
        base = start + 1 + vlen
        name, at, width = draw(st.sampled_from([("length", 24, 4), ("plen", 30, 4), ("kind", 28, 1),
                                                ("codec", 29, 1), ("vlen", None, 1)]))
        if name == "vlen":
            buf[start] = draw(st.integers(0, 255))
        elif width == 1:
            buf[base + at] = draw(st.integers(0, 255))
        else:
            buf[base + at: base + at + 4] = struct.pack("<I", draw(st.sampled_from(_INTERESTING_U32)))
        fixed = bytes(buf[start:crc_at])
        buf[crc_at: crc_at + 4] = struct.pack("<I", crc32c.crc32c(bytes(buf[crc_at + 4: end]), crc32c.crc32c(fixed)))
    return bytes(buf)


# -- hand-framed records with arbitrary fields -------------------------------

_zstd = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda n: zstandard.ZstdCompressor().compress(bytes(n)), st.integers(0, 3 << 20)),
    st.builds(lambda c: bomb_payload(content_size=c), st.booleans()),
)


@st.composite
def crafted_batches(draw, min_seq: int = 0) -> bytes:
    """A batch framed correctly (CRCs and header right) whose records carry arbitrary field values."""
    recs = []
    seq = draw(st.integers(min_seq, (1 << 64) - 1))
    for _ in range(draw(st.integers(1, 3))):
        volume = draw(st.sampled_from(sorted(VOLUMES)) | st.text(min_size=1, max_size=8))
        if len(volume.encode()) > 64:
            volume = "disk0"
        length = draw(st.sampled_from(_INTERESTING_U32) | st.integers(0, (1 << 32) - 1))
        payload = draw(_zstd)
        offset = draw(st.integers(0, (1 << 64) - 1) | st.sampled_from([0, VOLUMES["disk0"] - length]).filter(
            lambda x: x >= 0))
        kind = draw(st.sampled_from([0, 0, 1, 2, 3, 4]))  # DATA most often: it is the one that inflates
        codec = draw(st.sampled_from([1, 1, 0, 2]))
        recs.append(_raw(volume, seq, draw(st.integers(0, (1 << 64) - 1)), offset, length, kind, codec, payload))
        seq = min(seq + draw(st.sampled_from([1, 1, 1, 0, 2])), (1 << 64) - 1)
    return raw_batch(*recs)


def _raw(volume: str, seq: int, ts: int, offset: int, length: int, kind: int, codec: int, payload: bytes) -> bytes:
    vol = volume.encode()
    fixed = bytes([len(vol)]) + vol + struct.pack("<QQQIBBI", seq, ts, offset, length, kind, codec, len(payload))
    return fixed + struct.pack("<I", crc32c.crc32c(payload, crc32c.crc32c(fixed))) + payload


@st.composite
def framed_garbage(draw) -> bytes:
    """A header that passes its CRC (any count, body_len matching) over random body bytes."""
    body = draw(st.binary(max_size=512))
    count = draw(st.integers(0, 40))
    head = _HEAD.pack(b"DBWB", 1, 0, 0, count, len(body))
    return head + struct.pack("<I", crc32c.crc32c(head)) + body


def batch_inputs_from(min_seq: int = 0) -> st.SearchStrategy[bytes]:
    """Anything a client may post as one batch; with ``min_seq`` >= 2 none is acceptable to a new group."""
    return st.one_of(st.binary(max_size=1024), framed_garbage(),
                     mutated(records(min_seq=max(1, min_seq)).map(encode_batch)), crafted_batches(min_seq))


def body_inputs_from(min_seq: int = 0) -> st.SearchStrategy[bytes]:
    """Anything a client may post as a multi-batch body (batch_inputs_from, framed as a body)."""
    return st.one_of(st.binary(max_size=1024), mutated(valid_bodies(max(1, min_seq)), framed=False),
                     st.lists(batch_inputs_from(min_seq), min_size=1, max_size=9).map(
                         lambda bs: b"".join(struct.pack("<I", len(b)) + b for b in bs)))


batch_inputs = batch_inputs_from()
body_inputs = body_inputs_from()


@st.composite
def sealed_valid(draw) -> bytes:
    recs = draw(records())
    return seal(KEY, TENANT, GROUP, recs[0].sequence, recs[-1].sequence, encode_batch(recs))


sealed_inputs = st.one_of(st.binary(max_size=256), st.binary(max_size=256).map(lambda b: b"DBT1" + b),
                          mutated(sealed_valid(), framed=False))
zstd_inputs = st.one_of(st.binary(max_size=256), _zstd, mutated(_zstd.filter(bool), framed=False))

# -- checks: the decoder either decodes or raises its documented error ------------

HEAP_BOUND = 32 << 20  # inputs are at most a few MiB: decoding one may never grow the heap past this


def bounded(check):
    """``check`` run with its peak Python-heap growth asserted under HEAP_BOUND (no bomb inflates)."""
    def run(value) -> None:
        with peak_growth() as peak:
            check(value)
        assert peak[0] < HEAP_BOUND, f"{check.__name__} grew the heap by {peak[0] >> 20} MiB"
    run.__name__ = run.__qualname__ = check.__name__
    run.__doc__ = check.__doc__
    return run



def check_frames(buf: bytes) -> None:
    """shared.frames: decode_batch and every record's data() raise only FrameError."""
    try:
        for rec in decode_batch(buf):
            rec.data()
    except FrameError:
        pass


def check_segment(buf: bytes) -> None:
    """shared.journal: a segment's records (the codec bodies reuse) raise only JournalError / FrameError."""
    try:
        for rec in iter_segment_records(buf, "fuzz.seg"):
            rec.data()
    except (JournalError, FrameError):
        pass


def check_split_body(buf: bytes) -> None:
    """shared.bodies.split_body raises only BodyError."""
    try:
        split_body(buf)
    except BodyError:
        pass


def _group(acked: int) -> GroupState:
    return GroupState(GROUP, dict(VOLUMES), acked_through=acked)


def check_plan_single(buf: bytes) -> None:
    """Ingest's planning of a one-batch body raises only IngestError (a 4xx)."""
    for acked in (0, 3):
        try:
            plan_single(buf, _group(acked))
        except IngestError:
            pass


def check_plan_body(buf: bytes) -> None:
    """Ingest's planning of a multi-batch body raises only IngestError (a 4xx)."""
    for acked in (0, 3):
        try:
            plan_body(buf, _group(acked))
        except IngestError:
            pass


def check_open_sealed(buf: bytes) -> None:
    """shared.crypto.transport.open_sealed raises only TransportError; what opens is a batch that decodes."""
    try:
        batch, first, last = open_sealed(KEY, TENANT, GROUP, buf)
    except TransportError:
        return
    recs = decode_batch(batch)
    assert (recs[0].sequence, recs[-1].sequence) == (first, last)


def check_decode_key(text: str) -> None:
    try:
        assert len(decode_key(text)) == 32
    except TransportError:
        pass


def check_inflate(buf: bytes) -> None:
    """shared.inflate raises only the caller's error, and never returns more than the limit."""
    for limit in (0, 4096, MAX_RECORD_BYTES):
        try:
            assert len(inflate(buf, limit, JournalError)) <= limit
        except JournalError:
            pass
        try:
            inflate(buf, limit)
        except InflateError:
            pass


TARGETS = {
    "frames": (batch_inputs, bounded(check_frames)),
    "segment": (body_inputs, bounded(check_segment)),
    "split_body": (body_inputs, check_split_body),
    "plan_single": (batch_inputs, bounded(check_plan_single)),
    "plan_body": (body_inputs, bounded(check_plan_body)),
    "open_sealed": (sealed_inputs, check_open_sealed),
    "decode_key": (st.text(max_size=64), check_decode_key),
    "inflate": (zstd_inputs, bounded(check_inflate)),
}
