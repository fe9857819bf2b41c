"""Burst against the real local OpenStack: DR test end to end, bad input, crash and restart."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from services.burst.app import create_app
from services.burst.config import BurstSettings
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.images import FileImageSource
from services.burst.provider.openstack import OpenStackProvider
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter
from tests.services.burst.os_helpers import BurstProcess, nothing_left, sdk, tagged_everywhere, wait_status
from tests.services.burst.test_provider_contract import set_instance_quota

pytestmark = pytest.mark.integration
TENANT = "acme"


@pytest.fixture
def conn(openstack_cloud):
    c = sdk(openstack_cloud)
    yield c
    c.close()


@pytest.fixture
def emitter():
    return MemoryEmitter("/dialback/burst")


@pytest.fixture
def client(tmp_path, openstack_cloud, image_root, small_image, emitter, tokens):
    """Authenticated as acme."""
    provider = OpenStackProvider(**openstack_cloud.connect_kwargs())
    engine = Engine(EventLog(tmp_path / "burst"), provider, FileImageSource(image_root), BurstUsage(emitter))
    app = create_app(BurstSettings(burst_tick_seconds=0.5, **tokens.settings()), engine=engine)
    with TestClient(app, headers=tokens.bearer(tokens.acme)) as c:
        yield c
    for tenant, op_id in engine.events.operations():  # a failed test must not leave servers behind
        engine.request_cleanup(tenant, op_id, "test teardown")
        engine.drive(tenant, op_id)


def sha512(path):
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def op_url(op_id):
    return f"/v1/tenants/{TENANT}/operations/{op_id}"


def test_drtest_end_to_end_from_a_known_raw_image(client, conn, small_image, emitter):
    op = f"dr-{int(time.time())}"
    r = client.post("/v1/operations", json={"id": op, "tenant": TENANT, "kind": "drtest", "group": "g1",
                                           "volume": "disk0", "point": "p1", "time_limit_seconds": 600})
    assert r.status_code == 202, r.text
    st = wait_status(lambda: client.get(op_url(op)).json(), {"running", "failed"})
    assert st["status"] == "running", st["error"]
    # the server really is ACTIVE, on the operation's own isolated network, tagged
    srv = conn.compute.get_server(st["servers"]["s0"]["id"])
    assert srv.status == "ACTIVE"
    assert set(srv.tags) == {f"dialback-op={op}", f"dialback-tenant={TENANT}"}
    assert list(srv.addresses) == [f"dialback-{op}"]
    net = conn.network.get_network(st["network"]["network_id"])
    assert net.name == f"dialback-{op}" and not net.is_router_external
    # Glance holds exactly the file's bytes
    img = conn.image.get_image(srv.image["id"])
    assert (img.checksum, img.size) == (small_image.md5, small_image.size)
    assert (img.hash_algo, img.hash_value) == ("sha512", sha512(small_image.path))
    found = tagged_everywhere(conn, TENANT, op)
    assert len(found["servers"]) == 1 and len(found["images"]) == 1 and len(found["ports"]) == 1
    # cleanup leaves nothing tagged
    assert client.post(op_url(op) + "/cleanup").status_code == 202
    st = wait_status(lambda: client.get(op_url(op)).json(), {"cleaned", "failed"})
    assert st["status"] == "cleaned"
    assert nothing_left(tagged_everywhere(conn, TENANT, op)), tagged_everywhere(conn, TENANT, op)
    assert {e.meter.value for e in emitter.events} == {"drtest.seconds", "burst.server_seconds"}


@pytest.mark.parametrize("change,words", [
    ({"flavor": "m9.huge"}, "m9.huge"),
    ({"point": "p42"}, "p42"),
])
def test_bad_input_is_refused_and_nothing_is_made(client, conn, change, words):
    op = f"bad-{int(time.time() * 1000) % 10**9}"
    r = client.post("/v1/operations", json={"id": op, "tenant": TENANT, "kind": "failover", "group": "g1",
                                           "volume": "disk0", **change})
    assert r.status_code == 422 and words in r.json()["detail"]["message"]
    assert client.get(op_url(op)).status_code == 404
    assert nothing_left(tagged_everywhere(conn, TENANT, op))


def test_quota_exceeded_is_refused_up_front_and_at_boot(client, conn, openstack_cloud):
    provider = OpenStackProvider(**openstack_cloud.connect_kwargs())
    restore = set_instance_quota(provider, 1)
    try:
        op = f"quota-{int(time.time())}"
        body = {"id": op, "tenant": TENANT, "kind": "burst", "group": "g1", "volume": "disk0", "count": 3}
        r = client.post("/v1/operations", json=body)
        assert r.status_code == 422 and "instances" in r.json()["detail"]["message"]
        assert nothing_left(tagged_everywhere(conn, TENANT, op))
        # Room for one server when asked, none when booting: nova refuses, the engine rolls back.
        op2 = op + "-b"
        r = client.post("/v1/operations", json={**body, "id": op2, "count": 1})
        assert r.status_code == 202
        conn.set_compute_quotas(conn.current_project_id, instances=0)
        st = wait_status(lambda: client.get(op_url(op2)).json(), {"running", "failed"})
        assert st["status"] == "failed" and "quota" in st["error"].lower()
        assert nothing_left(tagged_everywhere(conn, TENANT, op2))
    finally:
        restore()


def test_killed_mid_operation_resumes_and_leaks_nothing(tmp_path, openstack_cloud, conn, image_root, small_image):
    state = tmp_path / "burst"
    state.mkdir()
    svc = BurstProcess(state, image_root, openstack_cloud)
    op = f"kill-{int(time.time())}"
    log = state / "operations" / TENANT / f"{op}.jsonl"
    try:
        svc.start()
        r = httpx.post(svc.url + "/v1/operations", json={"id": op, "tenant": TENANT, "kind": "burst", "group": "g1",
                                                        "volume": "disk0", "count": 2}, timeout=60,
                       headers=svc.headers)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 120
        while "ServerCreated" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        svc.kill()  # mid-provisioning: one server asked for, the rest not yet
        types = [line for line in log.read_text().splitlines()]
        assert not any('"OperationRunning"' in t for t in types)
        svc.start()  # the restarted service resumes from the log
        get = lambda: httpx.get(f"{svc.url}/v1/tenants/{TENANT}/operations/{op}", timeout=30,  # noqa: E731
                                headers=svc.headers).json()
        st = wait_status(get, {"running", "failed"})
        assert st["status"] == "running", st["error"]
        found = tagged_everywhere(conn, TENANT, op)
        assert len(found["servers"]) == 2 and len(found["ports"]) == 2 and len(found["images"]) == 1  # no duplicates
        # another tenant's token cannot clean it up (404) and nothing in the cloud changes
        intruder = {"Authorization": f"Bearer {svc.intruder_token}"}
        r = httpx.post(f"{svc.url}/v1/tenants/{TENANT}/operations/{op}/cleanup", timeout=30, headers=intruder)
        assert r.status_code == 404 and svc.intruder_token not in r.text
        assert tagged_everywhere(conn, TENANT, op) == found and get()["status"] == "running"
        # the provider's admin token sees it across tenants
        admin = {"Authorization": f"Bearer {svc.admin_token}"}
        assert (TENANT, op) in {(o["tenant"], o["id"]) for o in
                                httpx.get(f"{svc.url}/v1/operations", timeout=30, headers=admin).json()}
        # now kill it in the middle of cleanup
        httpx.post(f"{svc.url}/v1/tenants/{TENANT}/operations/{op}/cleanup", timeout=30, headers=svc.headers)
        deadline = time.monotonic() + 120
        while '"ResourceDeleted"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        svc.kill()
        svc.start()
        st = wait_status(get, {"cleaned", "failed"})
        assert st["status"] == "cleaned"
        assert nothing_left(tagged_everywhere(conn, TENANT, op)), tagged_everywhere(conn, TENANT, op)
    finally:
        svc.stop()
