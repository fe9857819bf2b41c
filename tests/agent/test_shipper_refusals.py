"""The agent against the real ingest app when ingest refuses it: protection switched off for its group
(the ``licence`` alarm, with ingest's message) or its credential revoked (the ``credentials`` alarm).
Either way the spool keeps every record, and shipping resumes by itself once fixed."""

from __future__ import annotations

import os

import httpx

from agent.runtime import AgentThread
from agent.shipper import ALARM_AUTH, ALARM_LICENCE
from services.ingest.app import create_app
from services.ingest.bus.memory import MemoryBroker, MemoryControlLog, MemoryWritesLog
from services.ingest.config import IngestSettings
from services.ingest.transport import TransportKeys
from shared.auth import create_tenant, issue, list_credentials, revoke
from shared.frames import decode_batch
from shared.licences import BookView, LicenceBook
from shared.usage import Feature
from tests.agent.conftest import agent_settings, make_image, wait_for

MiB = 1 << 20


class Ingest:
    def __init__(self, tmp_path):
        self.tenants = tmp_path / "tenants.json"
        self.token = create_tenant(self.tenants, "acme")
        self.book = LicenceBook()
        broker = MemoryBroker()
        self.writes = MemoryWritesLog(broker)
        self.app = create_app(IngestSettings(tenants_file=self.tenants, ingest_usage=False), writes=self.writes,
                              control=MemoryControlLog(broker), keys=TransportKeys(None),
                              licences=BookView(self.book))

    def switch(self, enabled: bool, at: float) -> None:
        lic = self.book.switch("acme", Feature.PROTECTION, "grp1", enabled, at)
        self.book.apply_record(lic.key, lic.to_json())

    def agent(self, tmp_path, img, token=None) -> AgentThread:
        s = agent_settings(tmp_path, "http://127.0.0.1:8100", {"disk0": img}, token=token or self.token)
        return AgentThread(s, transport=httpx.ASGITransport(app=self.app)).start()

    def shipped(self) -> int:
        return sum(len(decode_batch(m.value)) for m in self.writes.messages("acme"))


def test_protection_off_shows_ingests_message_and_keeps_the_spool(tmp_path):
    ingest = Ingest(tmp_path)
    img = make_image(tmp_path / "a.img", 4 * MiB, os.urandom(50_000), 4096)
    ingest.switch(False, 1_800_000_000.0)
    h = ingest.agent(tmp_path, img)
    try:
        g = h.group
        wait_for(lambda: ALARM_LICENCE in g.alarms, what="the licence alarm")
        for i in range(5):
            g.write("disk0", i * 100_000, os.urandom(8192))
        st = h.agent.status()["groups"]["grp1"]
        msg = st["alarms"][ALARM_LICENCE]
        assert "protection is switched off for group 'grp1'" in msg and "dialback license on acme" in msg
        assert st["acked_through"] == 0 and st["spool_records"] == g.spool.last_seq > 5
        assert ingest.shipped() == 0
        ingest.switch(True, 1_800_000_100.0)
        wait_for(lambda: g.state.acked_through == g.spool.last_seq, what="the kept spool shipped")
        assert ALARM_LICENCE not in g.alarms
        assert ingest.shipped() == g.spool.last_seq
    finally:
        h.stop()


def test_a_revoked_agent_credential_alarms_and_keeps_the_spool(tmp_path):
    ingest = Ingest(tmp_path)
    img = make_image(tmp_path / "a.img", 4 * MiB, os.urandom(50_000), 4096)
    [agent] = list_credentials(ingest.tenants, "acme")
    revoke(ingest.tenants, "acme", agent.id)
    h = ingest.agent(tmp_path, img)
    try:
        g = h.group
        wait_for(lambda: ALARM_AUTH in g.alarms, what="the credentials alarm")
        assert "HTTP 401" in g.alarms[ALARM_AUTH] and "dialback token create" in g.alarms[ALARM_AUTH]
        for i in range(3):
            g.write("disk0", i * 100_000, os.urandom(8192))  # the tap keeps writing and spooling
        assert ingest.shipped() == 0 and g.spool.last_seq >= 3
        spooled = g.spool.last_seq
    finally:
        h.stop()
    fresh = issue(ingest.tenants, "acme", ["ingest"]).token
    h = ingest.agent(tmp_path, img, token=fresh)
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and g.state.acked_through == g.spool.last_seq,
                 what="shipped with the new credential")
        assert ALARM_AUTH not in g.alarms and ingest.shipped() == g.spool.last_seq > spooled
    finally:
        h.stop()
