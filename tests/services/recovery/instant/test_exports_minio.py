"""Instant access on the real MinIO, through the API: every byte read over NBD matches the reference.

Also: the overlay never writes the bucket and disappears with its export; GC running while an export
is open keeps what it reads (its lease); refused requests leave no export and no lease.
"""

from __future__ import annotations

import json
import os
import secrets

import pytest

from agent.nbd.client import connect
from services.retention.policy import HOUR_NS
from shared import keys
from tests.services.recovery.instant.history import GROUP, POLICY, VOLUMES, history, lease_keys, make_client, \
    nbd_sha256, retain, sha
from tests.services.recovery.instant.test_exports_api import bad_requests

URL = f"/v1/groups/{GROUP}/exports"


@pytest.fixture
def env(minio_store, tmp_path):
    tenant = f"ia-{secrets.token_hex(4)}"
    sim = history(minio_store, tenant)
    client, headers, emitter = make_client(minio_store, tmp_path, (tenant,))
    with client:
        yield client, headers[tenant], minio_store, sim, tmp_path


def snapshot(store, bucket: str) -> dict[str, str]:
    """Every object but leases, by digest."""
    return {i.key: sha(store.get(bucket, i.key)) for i in store.list(bucket, "")
            if not i.key.startswith(keys.leases_prefix(GROUP))}


def test_every_byte_over_nbd_matches_reference(env):
    client, h, store, sim, _ = env
    pts = client.get(f"/v1/groups/{GROUP}/points", headers=h).json()
    bodies = [{"latest": True}, {"at": {"sequence": pts["earliest"]["sequence"] + 3}},
              {"at": {"timestamp_ns": POLICY.floor_ns(sim.now) + HOUR_NS // 2}}]
    bodies += [{"at": {"sequence": pts["retained"][0]["sequence"]}}]  # an old point kept as a base
    checked = 0
    for body in bodies:
        for v, size in VOLUMES.items():
            r = client.post(URL, json={"volume": v, **body}, headers=h)
            assert r.status_code == 201, (body, r.text)
            e = r.json()
            assert nbd_sha256(e["port"], e["export_name"], size) == sha(sim.reference(e["sequence"])[v]), (body, v)
            with connect("127.0.0.1", e["port"], e["export_name"]) as c, pytest.raises(Exception):
                c.pwrite(b"x" * 4096, 0)  # read-only
            assert client.delete(f"{URL}/{e['id']}", headers=h).status_code == 200
            checked += 1
    assert checked == 8 and lease_keys(store, sim.bucket) == []


def test_overlay_writes_visible_store_unchanged_and_gone(env):
    client, h, store, sim, tmp_path = env
    before = snapshot(store, sim.bucket)
    e = client.post(URL, json={"volume": "disk0", "latest": True, "mode": "overlay"}, headers=h).json()
    want = bytearray(sim.reference(e["sequence"])["disk0"])
    with connect("127.0.0.1", e["port"], e["export_name"]) as c:
        c.pwrite(b"W" * 10000, 4000)
        c.zero(65536, 131072)
        c.flush()
    want[4000:14000] = b"W" * 10000
    want[131072:196608] = bytes(65536)
    assert nbd_sha256(e["port"], e["export_name"], VOLUMES["disk0"]) == sha(bytes(want))
    overlays = lambda: [p for p in (tmp_path / "work").glob("dialback-overlay-*") if os.path.isfile(p)]  # noqa: E731
    assert len(overlays()) == 1
    assert client.delete(f"{URL}/{e['id']}", headers=h).status_code == 200
    assert overlays() == []
    assert snapshot(store, sim.bucket) == before
    assert lease_keys(store, sim.bucket) == []
    # A fresh export of the same point reads the original bytes.
    e2 = client.post(URL, json={"volume": "disk0", "at": {"sequence": e["sequence"]}}, headers=h).json()
    assert nbd_sha256(e2["port"], e2["export_name"], VOLUMES["disk0"]) == sha(sim.reference(e["sequence"])["disk0"])
    client.delete(f"{URL}/{e2['id']}", headers=h)


def test_gc_while_export_open_keeps_what_it_reads(env):
    client, h, store, sim, _ = env
    target = POLICY.floor_ns(sim.now) + HOUR_NS // 2  # inside the window now, garbage three hours later
    e = client.post(URL, json={"volume": "disk0", "at": {"timestamp_ns": target}}, headers=h).json()
    want = sha(sim.reference(e["sequence"])["disk0"])
    with connect("127.0.0.1", e["port"], e["export_name"]) as c:
        c.pread(4096, 0)  # the export is in use when GC runs
        sim.advance(sim.now + 3 * HOUR_NS, mean_gap_ns=5 * 60 * 10**9)
        res = retain(store, sim)
        assert res.gc.kept_for_leases, res.gc
        got = sha(b"".join(c.pread(256 << 10, o) for o in range(0, VOLUMES["disk0"], 256 << 10)))
    assert got == want
    assert client.delete(f"{URL}/{e['id']}", headers=h).status_code == 200
    later = retain(store, sim)
    assert later.gc.segments_deleted > 0  # what the lease kept is collected once the export is gone


def test_bad_requests_refused_on_minio(env):
    client, h, store, sim, _ = env
    latest = client.get(f"/v1/groups/{GROUP}/points", headers=h).json()["latest"]["sequence"]
    for body, status in bad_requests(sim, latest):
        assert client.post(URL, json=body, headers=h).status_code == status, body
    assert client.post(URL, json={"volume": "disk0", "latest": True},
                       headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert client.get(URL, headers=h).json()["exports"] == []
    assert lease_keys(store, sim.bucket) == []


def test_real_nbd_clients_read_the_export(env):
    """nbdinfo sees a read-only export of the right size; nbdcopy copies exactly the point's bytes."""
    import hashlib
    import shutil
    import subprocess

    from tests.servers import unavailable

    client, h, store, sim, tmp_path = env
    for tool in ("nbdinfo", "nbdcopy"):
        if shutil.which(tool) is None:
            unavailable(tool, FileNotFoundError(f"{tool} not on PATH (apt-get install libnbd-bin)"))
    e = client.post(URL, json={"volume": "disk0", "latest": True}, headers=h).json()
    try:
        info = subprocess.run(["nbdinfo", "--json", e["uri"]], capture_output=True, text=True, timeout=30)
        assert info.returncode == 0, info.stderr
        doc = json.loads(info.stdout)["exports"][0]
        assert doc["is_read_only"] is True and doc["export-size"] == VOLUMES["disk0"]
        out = tmp_path / "copy.img"
        cp = subprocess.run(["nbdcopy", e["uri"], str(out)], capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha(sim.reference(e["sequence"])["disk0"])
    finally:
        client.delete(f"{URL}/{e['id']}", headers=h)
    assert lease_keys(store, sim.bucket) == []
