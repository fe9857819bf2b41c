"""Spool incarnations (Dialback issue 13, defect 3): an emptied spool numbers from 1 again; nothing
it spools may be deduplicated away or trimmed as "already acknowledged".

Protocol in process: the shipper against answers given by hand (httpx.MockTransport), the
whole agent against the real ingest app on the in-memory bus (httpx.ASGITransport), and the
agent against the fake ingest (an ingest that knows nothing of incarnations).
"""

from __future__ import annotations

import asyncio
import os
import shutil

import httpx

from agent.group import INITIAL_SYNC_BOOKMARK
from agent.runtime import AgentThread
from agent.shipper import ALARM_INCARNATION, Shipper
from agent.spool import Spool
from services.ingest.app import create_app
from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from services.ingest.config import IngestSettings
from services.ingest.transport import TransportKeys
from shared.auth import create_tenant
from shared.frames import Kind, decode_batch
from tests.agent.conftest import agent_settings, make_image, wait_for
from tests.agent.test_group import open_group, replay_matches

MiB = 1 << 20


def _segments(path) -> list:
    return sorted(path.glob("*.seg"))


# -- the spool's incarnation --------------------------------------------------------------------

def test_a_spool_gets_an_incarnation_that_survives_reopening_and_a_new_spool_a_new_one(tmp_path):
    s = Spool(tmp_path / "s1")
    inc = s.state.incarnation
    assert isinstance(inc, str) and len(inc) == 32 and int(inc, 16) >= 0
    s.close()
    assert Spool(tmp_path / "s1").state.incarnation == inc
    assert '"incarnation"' in (tmp_path / "s1" / "state.json").read_text()
    shutil.rmtree(tmp_path / "s1")
    assert Spool(tmp_path / "s1").state.incarnation != inc


# -- the shipper's answers ----------------------------------------------------------------------

def _ship(g, handler) -> Shipper:
    sh = Shipper(g, "http://ingest", "tok", transport=httpx.MockTransport(handler), backoff_start=0.01,
                 backoff_cap=0.01)

    async def go():
        stop = asyncio.Event()
        task = asyncio.ensure_future(sh.run(stop))
        await asyncio.sleep(0.5)  # register, ship, answers settled (backoff 10 ms)
        stop.set()
        await asyncio.wait_for(task, 10)
    asyncio.run(go())
    return sh


def _filled(tmp_path):
    g = open_group(tmp_path, {"a": 4 * MiB}, segment=64 << 10, registered=False)
    for i in range(8):
        g.write("a", i * 65536, os.urandom(65536))  # 8 records over several segments
    return g


def test_acked_through_above_anything_sent_alarms_and_keeps_the_spool(tmp_path):
    """An ingest that deduplicates a new spool against an old journal (here: one that knows no
    incarnations) answers acked_through 100 to records 1..8: the agent must not trim them."""
    g = _filled(tmp_path)
    segs = _segments(tmp_path / "spool")
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("x-dialback-incarnation"))
        if req.method == "PUT":  # an answer without acked_through: the batch's answer must catch it
            return httpx.Response(200, json={"group": "grp"})
        return httpx.Response(200, json={"acked_through": 100})

    _ship(g, handler)
    assert len(seen) > 1, "batches were sent"
    assert ALARM_INCARNATION in g.alarms, g.alarms  # before the fix: acked 8, records trimmed
    assert "100" in g.alarms[ALARM_INCARNATION]
    assert g.state.acked_through == 0
    assert _segments(tmp_path / "spool") == segs
    assert all(h == g.state.incarnation for h in seen), "registration and every batch carry the incarnation"


def test_acked_through_above_anything_numbered_at_registration_alarms_too(tmp_path):
    g = _filled(tmp_path)
    segs = _segments(tmp_path / "spool")
    posts = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "PUT":
            return httpx.Response(200, json={"group": "grp", "acked_through": 100})
        posts.append(req)
        return httpx.Response(200, json={"acked_through": 100})

    _ship(g, handler)
    assert ALARM_INCARNATION in g.alarms and not posts, "nothing is shipped to an ingest ahead of the spool"
    assert g.state.acked_through == 0 and _segments(tmp_path / "spool") == segs


def test_a_409_incarnation_on_a_batch_alarms_and_keeps_the_spool(tmp_path):
    g = _filled(tmp_path)
    segs = _segments(tmp_path / "spool")
    refusal = {"detail": "group grp is protected by another spool; re-protect with --reprotect",
               "reason": "incarnation", "epoch": 2, "acked_through": 40}

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "PUT":
            return httpx.Response(200, json={"group": "grp", "acked_through": 0,
                                             "incarnation": g.state.incarnation, "epoch": 1})
        return httpx.Response(409, json=refusal)

    _ship(g, handler)
    assert "another spool" in g.alarms.get(ALARM_INCARNATION, ""), g.alarms
    assert g.state.acked_through == 0
    assert _segments(tmp_path / "spool") == segs


# -- the whole agent against the real ingest app --------------------------------------------------

class _Ingest:
    """The real ingest app on the in-memory bus, reached through httpx.ASGITransport."""

    def __init__(self, tmp_path):
        self.tenant = "acme"
        self.token = create_tenant(tmp_path / "tenants.json", self.tenant)
        broker = MemoryBroker()
        self.writes = MemoryWritesLog(broker)
        self.app = create_app(IngestSettings(tenants_file=tmp_path / "tenants.json", ingest_usage=False),
                              writes=self.writes, control=MemoryControlLog(broker), keys=TransportKeys(None))

    def agent(self, tmp_path, img, **kw) -> AgentThread:
        s = agent_settings(tmp_path, "http://127.0.0.1:8100", {"disk0": img}, token=self.token, **kw)
        return AgentThread(s, transport=httpx.ASGITransport(app=self.app)).start()

    def records(self):
        return [r for m in self.writes.messages(self.tenant) for r in decode_batch(m.value)]


def _caught_up(g) -> bool:
    return g.state.initial_sync_complete and g.state.acked_through == g.spool.last_seq


def test_wiped_spool_is_refused_then_reprotection_rebuilds_the_disk(tmp_path):
    ingest = _Ingest(tmp_path)
    img = make_image(tmp_path / "a.img", 8 * MiB, os.urandom(100_000), 12345)
    spool = tmp_path / "spool" / "grp1"

    h = ingest.agent(tmp_path, img)
    try:
        g = h.group
        wait_for(lambda: _caught_up(g), what="initial sync shipped")
        for i in range(30):
            g.write("disk0", i * 200_000, os.urandom(20_000))
        wait_for(lambda: _caught_up(g), what="writes shipped")
        first_run = g.spool.last_seq
    finally:
        h.stop()
    produced = len(ingest.writes.messages(ingest.tenant))

    shutil.rmtree(spool)  # reinstalled agent / emptied spool
    h = ingest.agent(tmp_path, img)
    try:
        g = h.group
        wait_for(lambda: ALARM_INCARNATION in g.alarms, what="the incarnation alarm")
        for i in range(3):
            g.write("disk0", 7 * MiB + i * 4096, os.urandom(4096))  # reach the disk, never ingest
        st = h.agent.status()["groups"]["grp1"]
        assert "--reprotect" in st["alarms"][ALARM_INCARNATION]
        assert st["acked_through"] == 0 and st["spool_records"] == g.spool.last_seq > 0
        assert not st["registered"]
    finally:
        h.stop()
    assert len(ingest.writes.messages(ingest.tenant)) == produced, "nothing of the new spool was taken"
    assert _segments(spool), "the refused spool keeps its records"

    h = ingest.agent(tmp_path, img, reprotect=True)
    try:
        g = h.group
        wait_for(lambda: _caught_up(g), timeout=30, what="re-protection synced and shipped")
        g.write("disk0", 3 * MiB, os.urandom(70_000))
        wait_for(lambda: _caught_up(g), what="a write after re-protection shipped")
        assert ALARM_INCARNATION not in g.alarms
        recs = ingest.records()
        seqs = [r.sequence for r in recs]
        assert seqs == list(range(1, g.spool.last_seq + 1)), "one gap-free journal over both epochs"
        assert seqs[first_run] == first_run + 1
        syncs = [r.sequence for r in recs if r.kind == Kind.BOOKMARK and bytes(r.payload) == INITIAL_SYNC_BOOKMARK.encode()]
        assert len(syncs) == 2 and syncs[0] < first_run < syncs[1], "the new epoch ends its initial sync"
        assert replay_matches(tmp_path, g, recs), "the recovered image equals the disk (SHA-256)"
        # A restart with --reprotect still given changes nothing: same incarnation, same epoch.
        last = g.spool.last_seq
    finally:
        h.stop()
    h = ingest.agent(tmp_path, img, reprotect=True)
    try:
        g = h.group
        wait_for(lambda: g.registered.is_set(), what="registered again")
        assert g.spool.last_seq == last and g.state.initial_sync_complete
    finally:
        h.stop()


def test_wiped_spool_against_an_ingest_without_incarnations_is_not_trimmed(tmp_path, ingest):
    """The agent-side guard alone: the fake ingest deduplicates like an older ingest would."""
    img = make_image(tmp_path / "a.img", 8 * MiB, os.urandom(100_000), 12345)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img})).start()
    try:
        g = h.group
        wait_for(lambda: _caught_up(g), what="initial sync shipped")
        for i in range(30):
            g.write("disk0", i * 200_000, os.urandom(20_000))
        wait_for(lambda: _caught_up(g), what="writes shipped")
    finally:
        h.stop()
    shutil.rmtree(tmp_path / "spool" / "grp1")
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img})).start()
    try:
        g = h.group
        wait_for(lambda: ALARM_INCARNATION in g.alarms, what="the alarm for an ingest ahead of the spool")
        assert g.state.acked_through == 0 and g.spool.pending()[0] == g.spool.last_seq > 0
    finally:
        h.stop()
    assert _segments(tmp_path / "spool" / "grp1")
