"""Shipper with multi-batch bodies (shared.bodies) against the fake ingest over real HTTP."""

from __future__ import annotations

import os

from agent.shipper import build_batches
from shared.bodies import BATCHES_CONTENT_TYPE
from shared.frames import MAX_BATCH_BYTES, decode_batch
from tests.agent.conftest import wait_for
from tests.agent.fake_ingest import FakeIngest, IngestServer
from tests.agent.test_group import replay_matches
from tests.agent.test_shipper import caught_up, start


def _write_mib(g, mib: int) -> None:
    for i in range(mib * 4):  # 256 KiB incompressible writes, one record each
        g.write("disk0", (i % 32) * 262144, os.urandom(262144))


def test_build_batches_splits_into_consecutive_full_batches(tmp_path):
    h = start(tmp_path, "http://127.0.0.1:9")
    try:
        g = h.group
        first = g.spool.last_seq + 1
        _write_mib(g, 4)
        batches, last = build_batches(g, first, 3)
        recs = [decode_batch(b) for b in batches]
        assert len(batches) == 3 and all(len(b) <= MAX_BATCH_BYTES for b in batches)
        flat = [r.sequence for rs in recs for r in rs]
        assert flat == list(range(first, last + 1))  # consecutive, gap-free across batches
        assert last < g.spool.last_seq  # stopped at 3 batches, the rest waits for the next body
        assert build_batches(g, g.spool.last_seq + 1, 3) is None
    finally:
        h.stop()


def test_backlog_ships_in_multi_batch_bodies_and_replays_exactly(tmp_path, ingest):
    h = start(tmp_path, ingest.url)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="initial sync shipped")
        fake = ingest.ingest
        fake.fail_status = 503  # hold shipping so the whole 12 MiB is one backlog, whatever the machine's speed
        _write_mib(g, 12)
        g.bookmark("after")
        before = len(fake.bodies)
        fake.fail_status = None
        reads = g.spool.tail_reads
        wait_for(lambda: caught_up(g), timeout=60, what="backlog shipped")
        assert g.spool.tail_reads > reads  # 12 MiB fits the in-memory tail: no file reads needed
        assert set(fake.bodies) == {BATCHES_CONTENT_TYPE}
        recs = fake.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))
        assert replay_matches(tmp_path, g, recs)
        # 12 MiB in bodies of up to 8 batches: far fewer requests than batches
        assert len(fake.bodies) - before < 12
    finally:
        h.stop()


def test_ingest_without_multi_batch_bodies_gets_one_batch_per_request(tmp_path):
    server = IngestServer(FakeIngest(multi=False)).start()
    h = start(tmp_path, server.url)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="initial sync shipped")
        _write_mib(g, 3)
        wait_for(lambda: caught_up(g), timeout=60, what="writes shipped")
        recs = server.ingest.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))
        assert h.agent.shippers["grp1"].batches_per_post == 1
        assert server.ingest.bodies and BATCHES_CONTENT_TYPE not in server.ingest.bodies
    finally:
        h.stop()
        server.stop()


def test_batches_per_post_1_sends_single_batch_bodies(tmp_path, ingest):
    h = start(tmp_path, ingest.url, batches_per_post=1)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="initial sync shipped")
        _write_mib(g, 2)
        wait_for(lambda: caught_up(g), timeout=60, what="writes shipped")
        assert BATCHES_CONTENT_TYPE not in ingest.ingest.bodies
        assert [r.sequence for r in ingest.ingest.records["grp1"]] == list(range(1, g.spool.last_seq + 1))
    finally:
        h.stop()



def _reference_body(g, first: int, n: int) -> tuple[bytes, int]:
    """The body as built before spooled encodings were reused: decode, compress, encode each record."""
    from shared.bodies import encode_body
    from shared.frames import HEADER_SIZE, encode_batch, record_size
    from shared.journal import compress_record

    batches, out, size, last = [], [], HEADER_SIZE, 0
    for rec in g.spool.read(first, (n + 1) * MAX_BATCH_BYTES):
        rec = compress_record(rec)
        if out and size + record_size(rec) > MAX_BATCH_BYTES:
            batches.append(encode_batch(out))
            last, out, size = out[-1].sequence, [], HEADER_SIZE
            if len(batches) == n:
                break
        out.append(rec)
        size += record_size(rec)
    if out and len(batches) < n:
        batches.append(encode_batch(out))
        last = out[-1].sequence
    return encode_body(batches), last


def test_bodies_are_byte_identical_to_encoding_every_record_again(tmp_path):
    """Reused spooled encodings (incompressible writes) and re-encoded ones (compressed, zeroes,
    trims, bookmarks) give exactly the bytes the encode-everything path gave."""
    import random

    from agent.shipper import batch_parts, make_body

    h = start(tmp_path, "http://127.0.0.1:9")
    rng = random.Random(3)
    try:
        g = h.group
        first = g.spool.last_seq + 1
        for i in range(60):
            op, off = rng.random(), rng.randrange(64) * 65536
            if op < 0.45:
                g.write("disk0", off, os.urandom(rng.choice([4096, 65536, 262144])))
            elif op < 0.75:
                g.write("disk0", off, bytes([i]) * rng.choice([512, 8192, 262144]))  # compresses
            elif op < 0.85:
                g.zeroes("disk0", off, 65536)
            elif op < 0.95:
                g.trim("disk0", off, 65536)
            else:
                g.bookmark(f"b{i}", internal=True)  # a bookmark record (user ones wait for the sync)
        nxt = first
        while nxt <= g.spool.last_seq:
            want, want_last = _reference_body(g, nxt, 3)
            parts, last = batch_parts(g, nxt, 3)
            assert last == want_last
            assert make_body(None, g.name, nxt, last, parts, multi=True)[0] == want
            single, single_last = batch_parts(g, nxt, 1)
            assert make_body(None, g.name, nxt, single_last, single, multi=False)[0] == build_batches(g, nxt, 1)[0][0]
            nxt = last + 1
    finally:
        h.stop()
