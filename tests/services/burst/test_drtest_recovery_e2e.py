"""Proof: a DR test at a bookmark, end to end on the real pipeline and the real local OpenStack.

tap -> ingest -> Kafka -> retention -> MinIO, then the burst service process
(configured with S3 settings only, so the recovery-backed image source is the
default) boots the bookmark in OpenStack. The Glance image's bytes, downloaded
through openstacksdk, hash to the disk's copy taken at the bookmark; cleanup
leaves nothing tagged.
"""

from __future__ import annotations

import random
import uuid

import httpx
import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import Pipeline, sha256_file
from tests.services.burst.os_helpers import BurstProcess, glance_sha256, nothing_left, sdk, tagged_everywhere, \
    wait_status

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 32 << 20


def _writes(agent, rng: random.Random, count: int) -> None:
    with connect(agent.nbd_socket, None, "d0") as c:
        for _ in range(count):
            n = rng.choice([4096, 65536])
            c.pwrite(rng.randbytes(n), rng.randrange(0, SIZE // 4096 - 16) * 4096)
        c.flush()


@pytest.fixture
def pipeline(stack_env, tmp_path):
    p = Pipeline.create(stack_env, tmp_path / "home")
    yield p
    p.stop_all()


def test_drtest_at_a_bookmark_boots_exactly_the_bookmarked_bytes(pipeline, tmp_path, stack_env, openstack_cloud):
    pipeline.start()
    disk = tmp_path / "d0.img"
    disk.write_bytes(bytes(SIZE))
    agent = pipeline.start_agent("dr", {"d0": disk})
    agent.wait_shipped()
    rng = random.Random(11)
    _writes(agent, rng, 200)
    agent.bookmark("before-test")
    at_bookmark = sha256_file(disk)  # nothing writes between the bookmark and this copy
    _writes(agent, rng, 200)
    last = agent.wait_shipped(timeout=180)
    pipeline.wait_recoverable("dr", last, timeout=180)
    assert sha256_file(disk) != at_bookmark

    # S3 settings and the pipeline's keys (encryption at rest is on), no images dir: recovery-backed images
    # and the pipeline's tenants file: the burst API takes the same tenant token as recovery
    burst = BurstProcess(tmp_path / "burst", None, openstack_cloud, token=pipeline.token,
                         env={**pipeline.store_env(), "DIALBACK_TENANTS_FILE": pipeline.env["DIALBACK_TENANTS_FILE"]})
    burst.state_dir.mkdir()
    burst.start()
    conn = sdk(openstack_cloud)
    tenant, op = pipeline.tenant, f"dr-{uuid.uuid4().hex[:8]}"
    url = f"{burst.url}/v1/tenants/{tenant}/operations/{op}"
    auth = burst.headers
    get = lambda: httpx.get(url, timeout=30, headers=auth).json()  # noqa: E731
    try:
        assert httpx.get(url, timeout=30).status_code == 401  # no token, no answer
        bad = httpx.post(f"{burst.url}/v1/operations", timeout=60, headers=auth, json={
            "id": op, "tenant": tenant, "kind": "drtest", "group": "dr", "volume": "d0", "point": "no-such-mark"})
        assert bad.status_code == 422 and "no bookmark" in bad.text, bad.text
        assert httpx.get(url, timeout=30, headers=auth).status_code == 404
        assert nothing_left(tagged_everywhere(conn, tenant, op))

        r = httpx.post(f"{burst.url}/v1/operations", timeout=60, headers=auth, json={
            "id": op, "tenant": tenant, "kind": "drtest", "group": "dr", "volume": "d0",
            "point": "bookmark:before-test", "time_limit_seconds": 900})
        assert r.status_code == 202, r.text
        st = wait_status(get, {"running", "failed", "cleaned"}, timeout=600)
        assert st["status"] == "running", st["error"]
        assert st["points"] == {"dr/d0@bookmark:before-test": "bookmark:before-test"}
        assert conn.compute.get_server(st["servers"]["s0"]["id"]).status == "ACTIVE"
        image_id = st["images"]["dr/d0@bookmark:before-test"]["id"]
        assert glance_sha256(conn, image_id) == (at_bookmark, SIZE)
        assert not any((burst.state_dir / "work").rglob("*.raw")), "the built image is deleted after upload"
    finally:
        httpx.post(f"{url}/cleanup", json={"reason": "test done"}, timeout=60, headers=auth)
        try:
            st = wait_status(get, {"cleaned", "failed"}, timeout=300)
        finally:
            burst.stop()
        left = tagged_everywhere(conn, tenant, op)
        conn.close()
    assert st["status"] == "cleaned"
    assert nothing_left(left), left
