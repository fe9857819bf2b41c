"""A point served over NBD from the journal (no image materialized) reads byte-exact."""

from __future__ import annotations

import os
import random

import pytest

from agent.nbd.client import NbdRequestError, connect
from agent.nbd.server import NbdServer
from services.recovery.instant.blockmap import build
from services.recovery.instant.reader import PointBackend
from services.recovery.planner import At
from services.recovery.service import Recovery
from tests.services.recovery.journal_builder import reference
from tests.services.recovery.test_synth import VOLS, _journal


@pytest.mark.parametrize("seed", [1, 2])
def test_nbd_reads_match_reference(tmp_path, seed):
    store, recs, sync = _journal(seed)
    rec = Recovery(store, work_dir=tmp_path)
    last = recs[-1].sequence
    for n in sorted({sync, last, random.Random(seed).randrange(sync, last)}):
        plan = rec.plan("acme", "g1", "all", At.of(sequence=n))
        want = reference(VOLS, recs, n)
        exports = {v: PointBackend(store, plan.journal.bucket, build(store, plan.journal, plan.point, v, plan.base), name=v)
                   for v in VOLS}
        srv = NbdServer(exports, port=0)
        port = srv.start_sync()
        try:
            for v, size in VOLS.items():
                with connect("127.0.0.1", port, v) as c:
                    assert c.size == size
                    got = b"".join(c.pread(65536, off) for off in range(0, size, 65536))
                    assert got == want[v], f"{v} differs at sequence {n}"
                    assert c.pread(100, 12345) == want[v][12345:12445]
                    with pytest.raises(NbdRequestError):
                        c.pwrite(b"x" * 512, 0)
        finally:
            srv.close_sync()


def test_writable_overlay_leaves_store_unchanged(tmp_path):
    from services.recovery.instant.overlay import OverlayBackend

    store, recs, sync = _journal(7, n=100)
    rec = Recovery(store, work_dir=tmp_path)
    plan = rec.plan("acme", "g1", "disk0", At.of(sequence=recs[-1].sequence))
    want = reference(VOLS, recs, plan.point.sequence)["disk0"]
    before = {o.key: store.get(plan.journal.bucket, o.key) for o in store.list(plan.journal.bucket, "")}
    base = PointBackend(store, plan.journal.bucket, build(store, plan.journal, plan.point, "disk0", plan.base), name="disk0")
    ov = OverlayBackend(base, str(tmp_path))
    srv = NbdServer({"disk0": ov}, port=0)
    port = srv.start_sync()
    try:
        with connect("127.0.0.1", port, "disk0") as c:
            c.pwrite(b"Z" * 1000, 5000)
            c.zero(8192, 65536)  # (length, offset), like pread
            got = b"".join(c.pread(65536, o) for o in range(0, VOLS["disk0"], 65536))
        exp = bytearray(want)
        exp[5000:6000] = b"Z" * 1000
        exp[65536:65536 + 8192] = bytes(8192)
        assert got == bytes(exp)
    finally:
        srv.close_sync()
        ov.close()
    assert not os.path.exists(ov.path)
    after = {o.key: store.get(plan.journal.bucket, o.key) for o in store.list(plan.journal.bucket, "")}
    assert after == before
    fresh = PointBackend(store, plan.journal.bucket, build(store, plan.journal, plan.point, "disk0", plan.base), name="disk0")
    assert fresh.read(0, VOLS["disk0"]) == want
