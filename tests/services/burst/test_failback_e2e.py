"""Proof: failover, writes on the cloud disk through the tap, failback -- on the real pipeline and OpenStack.

The home disk is protected (tap -> ingest -> Kafka -> retention -> MinIO), the
home site is lost, the volume fails over at "latest" (recovery-backed image).
The cloud disk is the Glance image's bytes (what the server boots from),
protected in reverse by the same tap with --baseline: no initial copy. After
writes in the cloud, failback cuts over, applies the changes to the home
disk, verifies and cleans up. The home disk ends byte-equal to the cloud disk,
and the reverse tap shipped about as many bytes as were written.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from urllib.parse import urlsplit

import httpx
import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import Pipeline, sha256_file
from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.failback import Failback
from services.burst.model import OperationSpec
from services.burst.provider.openstack import OpenStackProvider
from services.burst.recovery_images import RecoveryImageSource
from services.burst.reverse_tap import parse_allowed
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter
from tests.services.burst.os_helpers import nothing_left, sdk, tagged_everywhere

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 32 << 20


def _writes(agent, rng: random.Random, count: int) -> int:
    """Random incompressible writes; returns the bytes written."""
    total = 0
    with connect(agent.nbd_socket, None, next(iter(agent.volumes))) as c:
        for _ in range(count):
            n = rng.choice([4096, 16384, 65536])
            c.pwrite(rng.randbytes(n), rng.randrange(0, (SIZE - n) // 4096) * 4096)
            total += n
        c.flush()
    return total


@pytest.fixture
def pipeline(stack_env, tmp_path):
    p = Pipeline.create(stack_env, tmp_path / "home")
    yield p
    p.stop_all()


def test_failback_ships_only_the_cloud_changes_and_the_home_disk_ends_equal(pipeline, tmp_path, openstack_cloud):
    pipeline.start()
    store = pipeline.store()  # decrypts: encryption at rest is on in the pipeline
    home = tmp_path / "home-d0.img"
    home.write_bytes(bytes(SIZE))
    home_tap = pipeline.start_agent("fb", {"d0": home})
    rng = random.Random(21)
    _writes(home_tap, rng, 150)
    last = home_tap.wait_shipped(timeout=180)
    pipeline.wait_recoverable("fb", last, timeout=180)
    home_tap.managed.stop()  # the home site is lost; its disk holds the latest point

    tenant, op = pipeline.tenant, f"fb-{int(time.time())}"
    engine = Engine(EventLog(tmp_path / "burst"), OpenStackProvider(**openstack_cloud.connect_kwargs()),
                    RecoveryImageSource(store, tmp_path / "work"), BurstUsage(MemoryEmitter("/dialback/burst")))
    engine.failback = Failback(store, poll=0.3)
    conn = sdk(openstack_cloud)
    try:
        engine.submit(OperationSpec(id=op, tenant=tenant, kind="failover", group="fb", volume="d0"))
        st = engine.drive(tenant, op)
        assert st.status == "running", st.error
        assert st.points == {"fb/d0@latest": f"seq:{last}"}

        # The cloud disk: the bytes the server boots from, as Glance serves them.
        cloud = tmp_path / "cloud-d0.img"
        with open(cloud, "wb") as f:
            for chunk in conn.image.download_image(conn.image.get_image(st.images["fb/d0@latest"]["id"]),
                                                   stream=True).iter_content(1 << 20):
                f.write(chunk)
        assert sha256_file(cloud) == sha256_file(home)
        cloud_tap = pipeline.start_agent("fb-back", {"d0-back": cloud}, extra={"DIALBACK_AGENT_BASELINE": "true"})
        cloud_tap.wait_shipped(timeout=120)
        baseline_shipped = cloud_tap.group_status()["shipped_bytes"]
        written = _writes(cloud_tap, random.Random(22), 120)
        cloud_tap.wait_shipped(timeout=180)
        expect = sha256_file(cloud)  # writes have stopped: the cut-over point

        # The reverse tap's TCP control API wants its bearer token (docs/agent.md, "Who may connect").
        engine.failback = Failback(store, poll=0.3, http=httpx.Client(
            timeout=60, headers={"Authorization": f"Bearer {cloud_tap.control_token()}"}))
        t0 = time.monotonic()
        engine.failback.allowed = parse_allowed(urlsplit(cloud_tap.control_url).netloc)  # the registered tap
        engine.request_failback(tenant, op, "fb-back", str(home), cloud_tap.control_url, expect_sha256=expect)
        st = engine.drive(tenant, op)
        failback_s = time.monotonic() - t0
        assert st.status == "cleaned", st.error
        assert sha256_file(home) == sha256_file(cloud) == expect
        shipped = cloud_tap.group_status()["shipped_bytes"]
        figures = {"disk_bytes": SIZE, "bytes_written_in_cloud": written, "reverse_shipped_bytes": shipped,
                   "reverse_shipped_for_baseline": baseline_shipped,
                   "shipped_over_written": round(shipped / written, 3),
                   "applied_bytes": st.failback["applied"]["bytes"], "failback_seconds": round(failback_s, 2)}
        print("\nfailback:", json.dumps(figures))
        if os.environ.get("DIALBACK_BENCH_OUT"):
            with open(os.environ["DIALBACK_BENCH_OUT"], "a") as f:
                f.write(json.dumps({"bench": "burst.failback", **figures}) + "\n")
        assert baseline_shipped < 64 << 10, "the baseline must not travel"
        assert 0.9 * written < shipped < written * 1.2 + (64 << 10), "only the changed bytes travel home"
        assert st.failback["applied"]["bytes"] == written
    finally:
        engine.request_cleanup(tenant, op, "test done")
        engine.drive(tenant, op)
        left = tagged_everywhere(conn, tenant, op)
        conn.close()
    assert nothing_left(left), left
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
