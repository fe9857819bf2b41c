"""Spool overflow on the real pipeline (agent -> ingest -> Kafka -> retention -> MinIO -> recovery):
points inside the resync window are refused by recovery, exports and burst naming the nearest consistent
points; its end is byte-exact."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from agent.nbd.client import connect
from deploy.local.pipeline import sha256_file
from services.burst.errors import UnknownPoint
from services.burst.recovery_images import RecoveryImageSource

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SIZE = 4 << 20
LIMIT = 1_000_000  # spool overflow threshold: a few hundred kB of writes with ingest down overflow it


def _writes(agent, rng: random.Random, count: int, n: int = 65536) -> None:
    with connect(agent.nbd_socket, None, "d0") as c:
        for _ in range(count):
            c.pwrite(rng.randbytes(n), rng.randrange(0, SIZE // n) * n)
        c.flush()


def _wait(what: str, cond, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    raise TimeoutError(what)


def test_overflow_resync_window_refused_inside_exact_at_its_end(pipeline, tmp_path):
    pipeline.start()
    disk = tmp_path / "d0.img"
    disk.write_bytes(bytes(SIZE))
    agent = pipeline.start_agent("window", {"d0": disk}, spool_limit=LIMIT)
    agent.wait_shipped(timeout=180)
    rng = random.Random(13)
    _writes(agent, rng, 4)  # shipped in order: consistent points

    pipeline.service("ingest").stop()
    _writes(agent, rng, 30)  # ~2 MB: past the limit, the rest only tracked as dirty
    _wait("overflow", lambda: agent.group_status()["overflow"])
    _writes(agent, rng, 10)  # not spooled
    pipeline.service("ingest").start()

    end = agent.wait_shipped(timeout=180)  # drained, resynced: the resync-complete marker is the last record
    pipeline.wait_recoverable("window", end, timeout=180)
    p = pipeline.points("window")
    url = f"{pipeline.recovery_url}/v1/groups/window/volumes/d0/image"
    (complete,) = [b for b in p["bookmarks"] if b["name"].startswith("dialback.resync-complete.")]
    r = httpx.get(url, params={"sequence": complete["sequence"] - 1}, headers=pipeline.auth(), timeout=60)
    assert r.status_code == 409, f"a point inside the resync was served: {r.status_code} {r.text[:200]}"
    (w,) = [w for w in p["windows"] if w["kind"] == "resync"]
    before, after = w["consistent_before"], w["consistent_after"]
    assert after["sequence"] == end and p["latest"]["sequence"] == end
    assert after["sequence"] - before["sequence"] > 1, "the resync copied at least one dirty chunk"

    inside = [{"sequence": before["sequence"] + 1}, {"sequence": after["sequence"] - 1},
              {"timestamp_ns": (before["timestamp_ns"] + after["timestamp_ns"]) // 2}]
    for at in inside:
        r = httpx.get(url, params=at, headers=pipeline.auth(), timeout=60)
        assert r.status_code == 409, (at, r.text)
        body = r.json()
        assert body["consistent_before"] == before and body["consistent_after"] == after, body
        assert f"sequence {after['sequence']}" in body["detail"]

    inside_seq = before["sequence"] + 1
    r = httpx.post(f"{pipeline.recovery_url}/v1/groups/window/exports", headers=pipeline.auth(), timeout=60,
                   json={"volume": "d0", "at": {"sequence": inside_seq}})
    assert r.status_code == 409 and r.json()["consistent_after"] == after, r.text
    src = RecoveryImageSource(pipeline.store(), tmp_path / "burst")
    with pytest.raises(UnknownPoint, match="inside a resync window"):
        src.validate(pipeline.tenant, "window", "d0", f"seq:{inside_seq}")
    assert src.resolve(pipeline.tenant, "window", "d0", "latest") == f"seq:{after['sequence']}"

    out = tmp_path / "end.img"
    r = pipeline.download("window", "d0", out, sequence=after["sequence"])
    assert r.status_code == 200, r.text
    assert sha256_file(out) == sha256_file(disk)  # nothing was written after the resync
    r = pipeline.download("window", "d0", out, timestamp_ns=after["timestamp_ns"])
    assert r.status_code == 200 and sha256_file(out) == sha256_file(disk)
