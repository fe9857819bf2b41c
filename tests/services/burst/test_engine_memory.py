"""The engine on the in-memory cloud: every operation kind, failures, rollback, resume."""

from __future__ import annotations

import sys

import pytest

from services.burst.engine import Engine
from services.burst.errors import Conflict, QuotaExceeded, UnknownFlavor, UnknownPoint
from services.burst.events import EventLog
from services.burst.model import OperationSpec
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter

TENANT = "acme"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def emitter():
    return MemoryEmitter("/dialback/burst")


@pytest.fixture
def engine(tmp_path, memory_provider, image_source, emitter, clock):
    return Engine(EventLog(tmp_path), memory_provider, image_source, BurstUsage(emitter),
                  clock=clock, sleep=clock.sleep, usage_interval=3600)


def spec(**kw) -> OperationSpec:
    base = {"id": "op-1", "tenant": TENANT, "kind": "failover", "group": "g1", "volume": "disk0"}
    return OperationSpec.model_validate({**base, **kw})


def tagged(provider, op_id):
    return provider.list_tagged({"dialback-op": op_id, "dialback-tenant": TENANT})


def test_drtest_runs_isolated_then_cleans_up_at_time_limit(engine, memory_provider, clock, emitter, small_image):
    st, created = engine.submit(spec(id="dr-1", kind="drtest", point="p1", time_limit_seconds=600))
    assert created
    st = engine.drive(TENANT, "dr-1")
    assert st.status == "running"
    assert st.network["network_id"] in memory_provider.res["network"]
    img = memory_provider.res["image"][st.images["g1/disk0@p1"]["id"]]
    assert (img["checksum"], img["size"]) == (small_image.md5, small_image.size)
    assert {r.kind for r in tagged(memory_provider, "dr-1")} == {"network", "subnet", "image", "port", "server"}
    clock.t += 601
    assert engine.due() == [(TENANT, "dr-1")]
    st = engine.drive(TENANT, "dr-1")
    assert st.status == "cleaned" and st.cleanup_reason == "time limit reached"
    assert tagged(memory_provider, "dr-1") == []
    meters = {(e.meter.value, e.quantity) for e in emitter.events}
    assert ("drtest.seconds", 601) in meters and ("burst.server_seconds", 601) in meters


def test_retry_with_same_id_is_idempotent_and_different_request_conflicts(engine, memory_provider):
    engine.submit(spec())
    engine.drive(TENANT, "op-1")
    st, created = engine.submit(spec())
    assert not created and st.status == "running"
    assert engine.drive(TENANT, "op-1").status == "running"
    assert len(memory_provider.res["server"]) == 1
    with pytest.raises(Conflict):
        engine.submit(spec(flavor="m1.small"))


@pytest.mark.parametrize("kw,err", [
    ({"flavor": "m9.huge"}, UnknownFlavor),
    ({"point": "p7"}, UnknownPoint),
    ({"volume": "nope"}, UnknownPoint),
    ({"kind": "burst", "count": 5}, QuotaExceeded),
])
def test_bad_requests_are_refused_before_anything_is_made(engine, memory_provider, kw, err, tmp_path):
    memory_provider.max_instances = 3
    with pytest.raises(err) as info:
        engine.submit(spec(**kw))
    assert str(info.value)  # a message the user can act on
    assert not engine.events.exists(TENANT, "op-1")
    assert tagged(memory_provider, "op-1") == [] and memory_provider.calls == []


def test_boot_failure_rolls_back_everything(engine, memory_provider):
    memory_provider.fail_next_boot = 2  # the first build and its retry
    engine.submit(spec())
    st = engine.drive(TENANT, "op-1")
    assert st.status == "failed" and "ERROR" in st.error
    assert tagged(memory_provider, "op-1") == []


def test_one_failed_build_is_retried_once(engine, memory_provider):
    memory_provider.fail_next_boot = 1
    engine.submit(spec())
    st = engine.drive(TENANT, "op-1")
    assert st.status == "running" and st.servers["s0"]["status"] == "ACTIVE"
    types = [e["type"] for e in engine.events.read(TENANT, "op-1")]
    assert types.count("ServerCreated") == 2 and types.count("BootFailed") == 1
    assert [r.kind for r in tagged(memory_provider, "op-1")].count("server") == 1


def test_burst_scales_up_and_down_and_bills_per_flavor(engine, memory_provider, clock, emitter):
    engine.submit(spec(id="b-1", kind="burst", count=2, flavor="m1.small"))
    assert len(engine.drive(TENANT, "b-1").live_servers()) == 2
    clock.t += 100
    engine.scale(TENANT, "b-1", 4)
    st = engine.drive(TENANT, "b-1")
    assert st.status == "running" and len(st.live_servers()) == 4
    assert len(tagged(memory_provider, "b-1")) == 1 + 4 + 4  # image, ports, servers
    clock.t += 50
    engine.scale(TENANT, "b-1", 1)
    st = engine.drive(TENANT, "b-1")
    assert sorted(st.live_servers()) == ["s0"]
    assert len([r for r in tagged(memory_provider, "b-1") if r.kind == "server"]) == 1
    billed = {e.subject.rsplit("/", 1)[1]: e.quantity for e in emitter.events}
    assert billed == {"s1": 150, "s2": 50, "s3": 50}
    assert all(e.attributes["flavor"] == "m1.small" for e in emitter.events)


def test_plan_boots_stages_in_order_and_rolls_back_on_failed_hook(engine, memory_provider, tmp_path):
    ok = [sys.executable, "-c", "import os,json; assert json.loads(os.environ['DIALBACK_SERVERS'])"]
    bad = [sys.executable, "-c", "import sys; print('db not reachable'); sys.exit(3)"]
    stages = [
        {"name": "db", "servers": [{"name": "db", "group": "g1", "volume": "disk0"}], "hook": ok, "wait_seconds": 5},
        {"name": "app", "servers": [{"name": "app", "group": "g1", "volume": "disk0", "point": "p0"}], "hook": bad},
    ]
    engine.submit(OperationSpec(id="plan-1", tenant=TENANT, kind="plan", stages=stages))
    st = engine.drive(TENANT, "plan-1")
    assert st.status == "failed" and "exited with 3" in st.error and "provider's log" in st.error
    assert "db not reachable" not in st.error, "hook output is the provider's, not the tenant's"

    assert st.stages_done == ["db"]
    order = [c for c in memory_provider.calls if c.startswith("server:")]
    assert order == ["server:dialback-plan-1-db", "server:dialback-plan-1-app"]
    assert tagged(memory_provider, "plan-1") == []


def test_resume_after_crash_adopts_what_the_cloud_already_made(engine, memory_provider, tmp_path):
    """A crash after the cloud made the server but before the event was written."""
    engine.submit(spec())
    real_append = engine.append

    def crash_on_server_created(st, type_, **data):
        if type_ == "ServerCreated":
            raise KeyboardInterrupt("simulated crash")
        return real_append(st, type_, **data)

    engine.append = crash_on_server_created
    with pytest.raises(KeyboardInterrupt):
        engine._provision(engine.state(TENANT, "op-1"))
    engine.append = real_append
    assert len(memory_provider.res["server"]) == 1  # made, but not recorded
    # a new engine (the restarted service) on the same log and cloud
    again = Engine(engine.events, memory_provider, engine.images, engine.usage, clock=engine.clock)
    assert again.due() == [(TENANT, "op-1")]
    st = again.drive(TENANT, "op-1")
    assert st.status == "running" and len(memory_provider.res["server"]) == 1


def test_cleanup_requested_mid_provisioning_wins(engine, memory_provider):
    engine.submit(spec())
    real = memory_provider.ensure_server

    def cancel_then_create(*a, **kw):
        engine.request_cleanup(TENANT, "op-1", "user cancelled")
        return real(*a, **kw)

    memory_provider.ensure_server = cancel_then_create
    st = engine.drive(TENANT, "op-1")
    assert st.status == "cleaned" and st.cleanup_reason == "user cancelled"
    assert tagged(memory_provider, "op-1") == []


def test_torn_last_line_is_ignored_and_healed(engine):
    engine.submit(spec())
    path = engine.events.path(TENANT, "op-1")
    with open(path, "ab") as f:
        f.write(b'{"type": "ProvisioningSta')
    assert engine.state(TENANT, "op-1").status == "requested"
    assert engine.drive(TENANT, "op-1").status == "running"
