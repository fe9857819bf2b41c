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
        _write_mib(g, 12)
        g.bookmark("after")
        wait_for(lambda: caught_up(g), timeout=60, what="backlog shipped")
        fake = ingest.ingest
        assert set(fake.bodies) == {BATCHES_CONTENT_TYPE}
        recs = fake.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))
        assert replay_matches(tmp_path, g, recs)
        # 12 MiB in bodies of up to 8 batches: far fewer requests than batches
        assert len(fake.bodies) < 12
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

