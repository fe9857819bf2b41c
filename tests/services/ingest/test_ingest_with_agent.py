"""The real agent (tap + spool + shipper) → the real ingest process → real Kafka.

What lands in the writes topic, decoded and applied in order, must rebuild the
agent's disk byte for byte; ingest being killed in the middle changes nothing.
"""

from __future__ import annotations

import os
import signal

import pytest

from agent.runtime import AgentThread
from deploy.local.process import free_port
from shared.auth import create_tenant
from shared.frames import decode_batch
from shared.tenancy import writes_topic
from tests.agent.conftest import agent_settings, make_image, wait_for
from tests.agent.test_group import replay_matches

from .kafka_helpers import read_topic
from .test_ingest_process import start

pytestmark = pytest.mark.integration
MiB = 1 << 20


def _tenant_and_ingest(kafka_bootstrap, tmp_path, prefix: str) -> tuple[str, str, int, dict, object]:
    """(tenant, token, port, env, process) of a fresh tenant and an ingest process serving it."""
    tenant = prefix + os.urandom(3).hex()
    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, tenant)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALBACK_")}
    env.update(DIALBACK_KAFKA_BOOTSTRAP=kafka_bootstrap, DIALBACK_TENANTS_FILE=str(tenants),
               DIALBACK_INGEST_PORT=str(port), DIALBACK_LOG_LEVEL="WARNING")
    return tenant, token, port, env, start(env, port, tmp_path / "ingest.log")


def test_agent_through_ingest_to_kafka_rebuilds_the_disk(kafka_bootstrap, tmp_path):
    tenant, token, port, env, proc = _tenant_and_ingest(kafka_bootstrap, tmp_path, "ag-")
    log = tmp_path / "ingest.log"
    img = make_image(tmp_path / "a.img", 8 * MiB, os.urandom(300_000), 4096)
    h = AgentThread(agent_settings(tmp_path, f"http://127.0.0.1:{port}", {"disk0": img}, token=token)).start()
    try:
        g = h.group
        caught_up = lambda: g.state.acked_through == g.spool.last_seq  # noqa: E731
        wait_for(lambda: g.state.initial_sync_complete and caught_up(), timeout=60, what="initial sync shipped")
        for i in range(10):
            g.write("disk0", i * 300_000, os.urandom(120_000))
        proc.send_signal(signal.SIGKILL)  # ingest dies; the agent keeps spooling and retries
        proc.wait(10)
        for i in range(10):
            g.write("disk0", 4 * MiB + i * 65536, bytes([i + 1]) * 65536)
        g.bookmark("after-restart")
        proc = start(env, port, log)
        wait_for(caught_up, timeout=60, what="everything shipped after ingest restarted")
        last = g.spool.last_seq
    finally:
        h.stop()
        proc.kill()
        proc.wait(10)
    msgs = read_topic(kafka_bootstrap, writes_topic(tenant))
    assert {m[0] for m in msgs} == {b"grp1"}
    recs, held = [], 0
    for _, value, _, _ in msgs:
        for r in decode_batch(value):
            # As retention does: a kill between the writes and the control produce may let a
            # resent batch land twice (data-path.md); what is already held is dropped.
            if r.sequence > held:
                assert r.sequence == held + 1, f"gap in the writes topic after sequence {held}"
                recs.append(r)
                held = r.sequence
    assert [r.sequence for r in recs] == list(range(1, last + 1))
    assert replay_matches(tmp_path, g, recs)


@pytest.mark.parametrize("in_flight", [1, 2, 4])
def test_bodies_in_flight_land_once_each_in_sequence_order(kafka_bootstrap, tmp_path, in_flight):
    """Several bodies on the wire (ingest may take a later one first: it waits for the earlier)."""
    tenant, token, port, _env, proc = _tenant_and_ingest(kafka_bootstrap, tmp_path, "fl-")
    img = make_image(tmp_path / "a.img", 32 * MiB, b"", 4096)
    h = AgentThread(agent_settings(tmp_path, f"http://127.0.0.1:{port}", {"disk0": img}, token=token,
                                   bodies_in_flight=in_flight)).start()
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete, timeout=60, what="initial sync")
        for i in range(96):  # 24 MiB of incompressible writes: several 8 MiB bodies
            g.write("disk0", (i % 128) * 262144, os.urandom(262144))
        wait_for(lambda: g.state.acked_through == g.spool.last_seq, timeout=120, what="everything shipped")
        last = g.spool.last_seq
    finally:
        h.stop()
        proc.kill()
        proc.wait(10)
    seqs = [r.sequence for _, value, _, _ in read_topic(kafka_bootstrap, writes_topic(tenant))
            for r in decode_batch(value)]
    assert seqs == list(range(1, last + 1))  # no gap, no duplicate, in order
