"""Recovery API: auth, status codes, downloads, and refusal before any image I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.recovery.app import create_app
from services.recovery.config import RecoverySettings
from shared.auth import OPERATE, TenantAuth, create_tenant
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.journal_builder import reference, write_journal
from tests.services.retention.helpers import bookmark

VOLS = {"disk0": 1 << 18, "disk1": 1 << 17}


class RecordingStore(MemoryObjectStore):
    """Counts segment reads and writes, to prove refusals happen before image I/O."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.recording = False

    def get(self, bucket, key):
        if self.recording:
            self.calls.append(("get", key))
        return super().get(bucket, key)

    def put(self, bucket, key, data):
        if self.recording:
            self.calls.append(("put", key))
        return super().put(bucket, key, data)

    def image_io(self):
        return [c for c in self.calls if c[0] == "put" or c[1].endswith(".seg")]


@pytest.fixture
def env(tmp_path: Path):
    store = RecordingStore()
    recs = [data_record(v, 0, 0, 0, b"") for v in ()]
    seq = 1
    for v, size in VOLS.items():
        for off in range(0, size, 32768):
            recs.append(data_record(v, seq, 1000 + seq, off, bytes([seq % 251]) * 32768))
            seq += 1
    recs.append(bookmark("disk0", seq, 1000 + seq, INITIAL_SYNC_BOOKMARK))
    sync = seq
    for i in range(1, 40):
        seq += 1
        recs.append(data_record("disk0" if i % 2 else "disk1", seq, 1000 + seq, (i % 4) * 4096, bytes([i]) * 4096))
    recs.append(bookmark("disk1", seq + 1, 1001 + seq, "after-patch"))
    write_journal(store, "acme", "g1", VOLS, recs, per_batch=5, per_segment=2)
    write_journal(store, "other", "g2", VOLS, recs, per_batch=5, per_segment=2)
    tenants = tmp_path / "tenants.json"
    token = create_tenant(tenants, "acme", scopes=[OPERATE])
    other = create_tenant(tenants, "other", scopes=[OPERATE])
    settings = RecoverySettings(home=tmp_path, recovery_work_dir=tmp_path / "work")
    app = create_app(store, TenantAuth(tenants), settings)
    client = TestClient(app)
    store.recording = True
    return client, store, recs, sync, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {other}"}


def test_auth_required(env):
    client, store, *_ = env
    assert client.get("/v1/groups/g1/points").status_code == 401
    assert client.get("/v1/groups/g1/points", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_points(env):
    client, store, recs, sync, h, _ = env
    r = client.get("/v1/groups/g1/points", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["earliest"] == {"sequence": sync, "timestamp_ns": 1000 + sync}
    assert body["latest"]["sequence"] == recs[-1].sequence
    assert [b["name"] for b in body["bookmarks"]] == [INITIAL_SYNC_BOOKMARK, "after-patch"]
    assert body["volumes"] == [{"volume": "disk0", "size": VOLS["disk0"]}, {"volume": "disk1", "size": VOLS["disk1"]}]


def test_download_matches_reference(env):
    client, store, recs, sync, h, _ = env
    n = sync + 17
    r = client.get("/v1/groups/g1/volumes/disk0/image", params={"sequence": n}, headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["x-dialback-sequence"] == str(n)
    assert r.content == reference(VOLS, recs, n)["disk0"]
    r = client.get("/v1/groups/g1/volumes/disk1/image", params={"bookmark": "after-patch"}, headers=h)
    assert r.content == reference(VOLS, recs, recs[-1].sequence)["disk1"]


def test_recovery_to_objects_whole_group(env):
    client, store, recs, sync, h, _ = env
    n = sync + 9
    r = client.post("/v1/groups/g1/recoveries", json={"volume": "all", "at": {"timestamp_ns": 1000 + n},
                                                       "target": {"digest": True}}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sequence"] == n
    want = reference(VOLS, recs, n)
    assert sorted(v["volume"] for v in body["volumes"]) == ["disk0", "disk1"]
    for v in body["volumes"]:
        assert v["bucket"] == "dialback-acme"
        assert store.get(v["bucket"], v["key"]) == want[v["volume"]]


BAD = [
    ("get", "/v1/groups/g1/volumes/disk0/image", {}, None, 400),
    ("get", "/v1/groups/g1/volumes/disk0/image?sequence=5&bookmark=x", {}, None, 400),
    ("get", "/v1/groups/g1/volumes/disk0/image?sequence=abc", {}, None, 400),
    ("get", "/v1/groups/g1/volumes/disk9/image?sequence=20", {}, None, 404),
    ("get", "/v1/groups/nope/volumes/disk0/image?sequence=20", {}, None, 404),
    ("get", "/v1/groups/g1/volumes/disk0/image?bookmark=missing", {}, None, 404),
    ("get", "/v1/groups/g1/volumes/disk0/image?sequence=3", {}, None, 422),
    ("get", "/v1/groups/g1/volumes/disk0/image?sequence=100000", {}, None, 422),
    ("get", "/v1/groups/g1/volumes/disk0/image?timestamp_ns=5", {}, None, 422),
    ("post", "/v1/groups/g1/recoveries", {}, {"volume": "all", "at": {}}, 400),
    ("post", "/v1/groups/g1/recoveries", {}, {"volume": "all", "at": {"sequence": 20, "timestamp_ns": 1}}, 400),
    ("post", "/v1/groups/g1/recoveries", {}, {"volume": "disk0", "at": {"sequence": 20},
                                              "target": {"key": "groups/g1/journal/x.seg"}}, 400),
    ("post", "/v1/groups/g1/recoveries", {}, {"volume": "disk7", "at": {"sequence": 20}}, 404),
    ("post", "/v1/groups/g1/recoveries", {}, {"volume": "all", "at": {"sequence": 2}}, 422),
]


@pytest.mark.parametrize("method,url,params,body,status", BAD)
def test_bad_requests_refused_before_image_io(env, method, url, params, body, status):
    client, store, recs, sync, h, _ = env
    r = client.request(method, url, params=params or None, json=body, headers=h)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert store.image_io() == []


def test_other_tenants_group_is_unknown(env):
    client, store, recs, sync, h, other = env
    # g2 exists, but only in tenant "other"'s bucket: acme gets the same 404 as for a missing group.
    r = client.get("/v1/groups/g2/points", headers=h)
    assert r.status_code == 404
    assert client.get("/v1/groups/g2/points", headers=other).status_code == 200
    assert client.get("/v1/groups/g1/points", headers=other).status_code == 404
    assert store.image_io() == []


def test_health_and_metrics(env):
    client, *_ = env
    assert client.get("/healthz").json() == {"status": "ok"}
    assert b"dialback_recovery" in client.get("/metrics").content


CHUNK_ID = "ab" + "c" * 62


def _snapshot(store: MemoryObjectStore) -> dict[tuple[str, str], bytes]:
    return {(b, k): bytes(v) for b, objs in store._buckets.items() for k, v in objs.items()}


@pytest.mark.parametrize("key", [
    f"chunks/ab/{CHUNK_ID}",                # a content-addressed chunk every base that shares it reads
    "chunks/",
    "groups/g1/leases/reader.json",
    "groups/g1/bases/00000000000000000020.json",
    "leases/x.json",
    "recoveries/../chunks/ab/" + CHUNK_ID,  # escapes the prefix
    "recoveries//x.img",                    # empty segment
    "recoveries/a/./b.img",
    "/recoveries/x.img",                    # leading /
    "recoveries",                           # the prefix without its '/'
    "recoveriesX/x.img",
    "recoveries/a\nb.img",
    "recoveries/" + "x" * 1000,             # too long
    "",
])
def test_target_key_outside_recoveries_refused_and_store_unchanged(env, key):
    client, store, recs, sync, h, _ = env
    chunk = b"chunk bytes shared by every base " * 100
    store.put("dialback-acme", f"chunks/ab/{CHUNK_ID}", chunk)
    before = _snapshot(store)
    r = client.post("/v1/groups/g1/recoveries", json={"volume": "disk0", "at": {"sequence": sync + 3},
                                                       "target": {"key": key}}, headers=h)
    assert r.status_code == 400, r.text
    assert "recoveries/" in r.json()["detail"]  # says which prefix is allowed
    assert _snapshot(store) == before
    assert store.get("dialback-acme", f"chunks/ab/{CHUNK_ID}") == chunk
    assert store.image_io() == [("put", f"chunks/ab/{CHUNK_ID}")]  # only the test's own put


@pytest.mark.parametrize("volume,key,want_key", [
    ("disk0", "recoveries/custom/disk0-at-x.img", "recoveries/custom/disk0-at-x.img"),
    ("all", "recoveries/custom/", None),
])
def test_target_key_under_recoveries_is_written(env, volume, key, want_key):
    client, store, recs, sync, h, _ = env
    n = sync + 5
    r = client.post("/v1/groups/g1/recoveries", json={"volume": volume, "at": {"sequence": n},
                                                       "target": {"key": key}}, headers=h)
    assert r.status_code == 201, r.text
    want = reference(VOLS, recs, n)
    for v in r.json()["volumes"]:
        assert v["key"] == (want_key or f"{key}{v['volume']}.img")
        assert store.get("dialback-acme", v["key"]) == want[v["volume"]]
