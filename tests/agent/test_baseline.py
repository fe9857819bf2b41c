"""--baseline: a disk that already equals a point Dialback holds (failback) is not copied; only new writes travel."""

from __future__ import annotations

import os

from agent.runtime import AgentThread
from shared.frames import Kind
from shared.journal import INITIAL_SYNC_BOOKMARK
from tests.agent.conftest import agent_settings, make_image, wait_for

MiB = 1 << 20


def test_baseline_skips_the_initial_copy_and_ships_only_new_writes(tmp_path, ingest):
    img = make_image(tmp_path / "cloud.img", 8 * MiB, os.urandom(4 * MiB))
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img}, baseline=True)).start()
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and g.state.acked_through == g.spool.last_seq,
                 what="baseline bookmark shipped")
        recs = ingest.ingest.records["grp1"]
        assert [(r.kind, r.payload) for r in recs] == [(Kind.BOOKMARK, INITIAL_SYNC_BOOKMARK.encode())]
        before = h.agent.status()["groups"]["grp1"]["shipped_bytes"]
        assert before < 4096, "no disk content travels for a known baseline"
        g.write("disk0", 65536, os.urandom(65536))
        wait_for(lambda: g.state.acked_through == g.spool.last_seq, what="write shipped")
        recs = ingest.ingest.records["grp1"]
        assert [(r.kind, r.offset, r.length) for r in recs[1:]] == [(Kind.DATA, 65536, 65536)]
        assert 65536 <= h.agent.status()["groups"]["grp1"]["shipped_bytes"] - before < 65536 + 4096
    finally:
        h.stop()
