"""The local OpenStack control plane: idempotent provisioning, catalog, loopback only, memory."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from deploy.local.openstack import catalog, layout as L, provision as osp, venv
from tests.fixtures_openstack import local_state_dir, openstack_cloud  # noqa: F401 - session fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local(openstack_cloud):  # noqa: F811
    if os.environ.get("DIALBACK_OS_AUTH_URL"):
        pytest.skip("DIALBACK_OS_AUTH_URL names an external cloud; the local control plane is not in use")
    return local_state_dir()


def test_second_provision_builds_nothing(local):
    lay = L.Layout.of(osp.default_cache(), local)
    stamp = venv.stamp(lay)
    before = stamp.stat().st_mtime_ns
    t = time.monotonic()
    assert osp.provision() is False
    assert time.monotonic() - t < 10
    assert stamp.stat().st_mtime_ns == before


def test_start_again_is_idempotent_and_every_process_answers(local):
    before = {n: s["pid"] for n, s in osp.status(local).items()}
    timings: dict = {}
    ep = osp.start(local, timings=timings)
    assert ep.auth_url == L.url("keystone")
    after = osp.status(local)
    assert {n: s["pid"] for n, s in after.items()} == before  # nothing restarted
    assert all(s["running"] for s in after.values()), after
    assert all(s["answers"] for n, s in after.items() if n.endswith("-api")), after
    print(f"\nwarm start on a running control plane: {timings}")


def test_catalog_users_flavors_networks(local):
    conn = catalog.admin_connection()
    try:
        svc_project = conn.identity.find_project("service")
        for user in L.SERVICE_USERS:
            u = conn.identity.find_user(user)
            roles = {conn.identity.get_role(a.role["id"]).name
                     for a in conn.identity.role_assignments(user_id=u.id, scope_project_id=svc_project.id)}
            assert {"admin", "service"} <= roles, (user, roles)
        types = {s.type for s in conn.identity.services()}
        assert {"identity", "image", "placement", "compute", "network", "block-storage"} <= types
        assert {"m1.tiny", "m1.small"} <= {f.name for f in conn.compute.flavors()}
        nets = {n.name: n for n in conn.network.networks()}
        assert {"dialback-drtest", "dialback-prod"} <= set(nets)
        assert list(conn.network.subnets(network_id=nets["dialback-drtest"].id))
        assert list(conn.compute.hypervisors())
        vol = conn.block_storage.create_volume(size=1, name="deploy-test-volume")
        conn.block_storage.wait_for_status(vol, "available", failures=["error"], wait=120)
        conn.block_storage.delete_volume(vol)
    finally:
        conn.close()


def test_listens_on_loopback_only(local):
    pids = {str(s["pid"]) for s in osp.status(local).values() if s["pid"]}
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]
    ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in ours}
    assert {L.PORTS[s] for s in ("keystone", "glance", "placement", "nova", "neutron", "cinder")} <= ports
    wide = [line for line in ours if not line.split()[3].startswith(("127.0.0.1:", "[::1]:"))]
    assert wide == [], wide


def test_memory_within_budget(local):
    pids = [s["pid"] for s in osp.status(local).values() if s["pid"]]
    total = 0
    for pid in pids:  # each process group: uwsgi workers and beam children count too
        for child in [pid, *_descendants(pid)]:
            try:
                with open(f"/proc/{child}/smaps_rollup") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
            except (OSError, StopIteration):
                pass
    print(f"\ncontrol plane memory (PSS): {total / 2**20:.0f} MiB over {len(pids)} services")
    assert 200 * 2**20 < total < 2.5 * 2**30


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    kids = [int(x) for x in out.split()]
    return kids + [d for k in kids for d in _descendants(k)]
