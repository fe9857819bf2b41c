"""An emptied spool on the real pipeline (Dialback issue 13, defect 3): ingest refuses the new
spool (nothing of it deduplicated away, nothing trimmed), and after `--reprotect` the recovered
image equals the disk, the journal one gap-free sequence over both epochs."""

from __future__ import annotations

import random
import shutil
import time

import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import sha256_file
from shared import keys
from shared.tenancy import tenant_bucket

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 8 << 20
GROUP = "reprot"


def _writes(agent, rng: random.Random, count: int) -> None:
    with connect(agent.nbd_socket, None, "d0") as c:
        for _ in range(count):
            n = rng.choice([4096, 65536])
            c.pwrite(rng.randbytes(n), rng.randrange(0, SIZE - n))
        c.flush()


def test_emptied_spool_is_refused_then_reprotection_recovers_the_disk(pipeline, tmp_path, minio_store):
    pipeline.start()
    disk = tmp_path / "d0.img"
    disk.write_bytes(bytes(SIZE))
    rng = random.Random(13)
    agent = pipeline.start_agent(GROUP, {"d0": disk})
    _writes(agent, rng, 40)
    first = agent.wait_shipped()
    agent.managed.stop()

    shutil.rmtree(pipeline.home / f"spool-{GROUP}")  # reinstalled agent / emptied spool
    agent = pipeline.start_agent(GROUP, {"d0": disk})
    _writes(agent, rng, 20)  # on the disk; ingest must not take them for what it holds
    deadline = time.monotonic() + 60
    while "incarnation" not in agent.group_status()["alarms"] and time.monotonic() < deadline:
        time.sleep(0.3)
    g = agent.group_status()
    assert "--reprotect" in g["alarms"].get("incarnation", ""), g
    assert g["acked_through"] == 0 and g["spool_records"] == g["last_sequence"] > 0
    agent.managed.stop()

    agent = pipeline.start_agent(GROUP, {"d0": disk}, extra={"DIALBACK_AGENT_REPROTECT": "true"})
    _writes(agent, rng, 20)
    last = agent.wait_shipped(timeout=180)
    assert last > first
    pipeline.wait_recoverable(GROUP, last, timeout=180)
    out = tmp_path / "latest.img"
    r = pipeline.download(GROUP, "d0", out, sequence=last)
    assert r.status_code == 200, r.text
    assert sha256_file(out) == sha256_file(disk)
    ranges = sorted(keys.parse_range(o.key)
                    for o in minio_store.list(tenant_bucket(pipeline.tenant), keys.timeline_prefix(GROUP)))
    assert ranges[0][0] == 1 and ranges[-1][1] >= last
    for (_a, b), (c, _d) in zip(ranges, ranges[1:]):
        assert c == b + 1, f"journal not one gap-free sequence: ...{b} then {c}..."
