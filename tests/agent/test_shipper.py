"""Shipper against a fake ingest that follows docs/data-path.md over real HTTP."""

from __future__ import annotations

import os
import time


from agent.runtime import AgentThread
from agent.shipper import build_batch
from shared.frames import MAX_BATCH_BYTES, Codec, Kind, decode_batch
from tests.agent.conftest import agent_settings, control_client, make_image, wait_for
from tests.agent.fake_ingest import FakeIngest, IngestServer, free_port
from tests.agent.test_group import replay_matches

MiB = 1 << 20


def caught_up(g) -> bool:
    return g.state.acked_through == g.spool.last_seq


def start(tmp_path, url, **kw) -> AgentThread:
    img = tmp_path / "a.img"
    if not img.exists():
        make_image(img, 8 * MiB, os.urandom(100_000), 12345)
    return AgentThread(agent_settings(tmp_path, url, {"disk0": img}, **kw)).start()


def test_ships_everything_and_trims_the_spool(tmp_path, ingest):
    h = start(tmp_path, ingest.url, segment_bytes=300_000)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="initial sync shipped")
        for i in range(20):
            g.write("disk0", i * 200_000, bytes([i]) * 100_000 + os.urandom(50_000))
        g.bookmark("after-writes")
        wait_for(lambda: caught_up(g), what="writes shipped")
        # acked_through moves at once; the state save, then the trim, follow in a worker thread
        wait_for(lambda: len(list((tmp_path / "spool" / "grp1").glob("*.seg"))) <= 1, what="spool trimmed")
        recs = ingest.ingest.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))
        assert ingest.ingest.groups["grp1"] == {"disk0": 8 * MiB}
        assert any(r.codec == Codec.ZSTD for r in recs)  # compressible payloads travel compressed
        assert replay_matches(tmp_path, g, recs)
        assert h.agent.status()["groups"]["grp1"]["rpo_seconds"] == 0
    finally:
        h.stop()


def test_ingest_down_then_up_loses_nothing(tmp_path):
    port = free_port()
    h = start(tmp_path, f"http://127.0.0.1:{port}")
    server = None
    try:
        g = h.group
        for i in range(10):
            g.write("disk0", i * 65536, os.urandom(65536))
        time.sleep(0.6)
        st = h.agent.status()["groups"]["grp1"]
        assert st["acked_through"] == 0 and st["spool_records"] == 10 and not st["registered"]
        assert st["rpo_seconds"] > 0.5
        assert "cannot reach ingest" in st["alarms"]["shipping"]
        server = IngestServer(FakeIngest(), port=port).start()
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), timeout=30, what="catch-up after outage")
        assert "shipping" not in g.alarms
        assert replay_matches(tmp_path, g, server.ingest.records["grp1"])
    finally:
        h.stop()
        if server:
            server.stop()


def test_503_is_retried_until_ingest_recovers(tmp_path, ingest):
    h = start(tmp_path, ingest.url)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="sync shipped")
        ingest.ingest.fail_status = 503
        g.write("disk0", 0, b"during outage" * 100)
        wait_for(lambda: "shipping" in g.alarms, what="alarm")
        assert g.state.acked_through < g.spool.last_seq
        ingest.ingest.fail_status = None
        wait_for(lambda: caught_up(g), what="recovery")
        assert replay_matches(tmp_path, g, ingest.ingest.records["grp1"])
    finally:
        h.stop()


def test_409_resends_from_what_ingest_expects(tmp_path, ingest):
    h = start(tmp_path, ingest.url)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="sync shipped")
        keep = g.state.acked_through - 2
        with ingest.ingest.lock:  # ingest lost its last two records (e.g. restored from an older state)
            ingest.ingest.acked["grp1"] = keep
            del ingest.ingest.records["grp1"][keep:]
        g.write("disk0", 4096, b"after reset" * 100)
        wait_for(lambda: caught_up(g) and ingest.ingest.acked["grp1"] == g.spool.last_seq, what="resend")
        recs = ingest.ingest.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))
        assert replay_matches(tmp_path, g, recs)
    finally:
        h.stop()


def test_409_for_records_already_trimmed_bridges_and_resyncs_every_volume(tmp_path, ingest):
    h = start(tmp_path, ingest.url, segment_bytes=50_000)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="sync shipped")
        for i in range(5):
            g.write("disk0", i * 65536, os.urandom(65536))
        wait_for(lambda: caught_up(g), what="shipped")
        wait_for(lambda: g.spool.first_available() > 3, what="spool trimmed")
        # The journal lost everything from ``lost`` on (retention's GroupBroken rewound ingest),
        # and the spool no longer holds those records.
        lost = g.spool.first_available() - 2
        with ingest.ingest.lock:
            ingest.ingest.acked["grp1"] = lost - 1
            del ingest.ingest.records["grp1"][lost - 1:]
        g.write("disk0", 0, b"x" * 4096)
        wait_for(lambda: "ingest_resync" in g.alarms or not g.state.needs_resync and caught_up(g)
                 and ingest.ingest.acked["grp1"] > lost, what="bridge and resync started")
        # The alarm goes last in resync_finished (after the resync-complete bookmark is spooled).
        wait_for(lambda: "ingest_resync" not in g.alarms and not g.state.needs_resync and caught_up(g)
                 and ingest.ingest.acked["grp1"] == g.spool.last_seq, what="resync shipped", timeout=60)
        recs = ingest.ingest.records["grp1"]
        assert [r.sequence for r in recs] == list(range(1, g.spool.last_seq + 1))  # gap-free again
        names = [bytes(r.payload).decode() for r in recs if r.kind == Kind.BOOKMARK]
        assert f"dialback.resync-start.{lost}" in names
        assert names[-1].startswith("dialback.resync-complete.")
        assert replay_matches(tmp_path, g, recs)  # what ingest holds rebuilds the disk byte for byte
    finally:
        h.stop()


def test_batches_respect_the_size_limit(tmp_path, ingest):
    h = start(tmp_path, "http://127.0.0.1:9")
    try:
        g = h.group
        for i in range(12):
            g.write("disk0", i * 262144, os.urandom(262144))
        body, last = build_batch(g, 1)
        assert len(body) <= MAX_BATCH_BYTES
        recs = decode_batch(body)
        assert recs[0].sequence == 1 and recs[-1].sequence == last and 1 < last < 12
    finally:
        h.stop()


def test_bandwidth_limit_paces_shipping(tmp_path, ingest):
    h = start(tmp_path, ingest.url, bandwidth=1_000_000)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="sync shipped")
        t0 = time.monotonic()
        for i in range(10):
            g.write("disk0", i * 262144, os.urandom(262144))  # 2.6 MB incompressible
        wait_for(lambda: caught_up(g), timeout=30, what="shipped")
        assert time.monotonic() - t0 >= 1.5
    finally:
        h.stop()


def test_overflow_end_to_end_alarm_then_resync_after_ingest_returns(tmp_path):
    port = free_port()
    h = start(tmp_path, f"http://127.0.0.1:{port}", spool_limit_bytes=1_000_000, spool_low_water_bytes=200_000,
              segment_bytes=256 << 10)
    server = None
    try:
        g = h.group
        for i in range(24):  # 24 x 100 kB of random data: well past the 1 MB limit
            g.write("disk0", i * 300_000, os.urandom(100_000))
        st = h.agent.status()["groups"]["grp1"]
        assert st["overflow"] and "spool_overflow" in st["alarms"]
        assert st["volumes"][0]["dirty_chunks"] > 0
        with control_client(h) as ctl:
            assert 'dialback_agent_alarm{alarm="spool_overflow",group="grp1"} 1.0' in ctl.get("/metrics").text
        server = IngestServer(FakeIngest(), port=port).start()
        wait_for(lambda: not g.overflow and not g.state.needs_resync and g.state.initial_sync_complete
                 and caught_up(g), timeout=60, what="drain, resync and initial sync")
        assert "spool_overflow" not in g.alarms
        recs = server.ingest.records["grp1"]
        names = [r.data() for r in recs if r.kind.name == "BOOKMARK"]
        assert any(n.startswith(b"dialback.resync-complete") for n in names)
        assert replay_matches(tmp_path, g, recs)
    finally:
        h.stop()
        if server:
            server.stop()
