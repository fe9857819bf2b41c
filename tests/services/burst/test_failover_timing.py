"""Failover of a 1 GiB raw image on the real local OpenStack, timed step by step.

Prints (and writes to $DIALBACK_BENCH_OUT, if set) the breakdown from the
request to ACTIVE: image materialize, Glance upload, boot. Asserts what must
hold whatever the speed: ACTIVE, the uploaded bytes equal the file.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from services.burst.engine import Engine
from services.burst.events import EventLog
from services.burst.images import FileImageSource
from services.burst.model import OperationSpec
from services.burst.provider.openstack import OpenStackProvider
from services.burst.usage import BurstUsage
from shared.usage import MemoryEmitter
from tests.services.burst.os_helpers import nothing_left, sdk, tagged_everywhere
from tests.services.burst.rawimage import put_point

pytestmark = pytest.mark.integration
GIB = 1 << 30


def test_failover_of_a_1gib_image_to_active(tmp_path, openstack_cloud):
    root = tmp_path / "images"
    image = put_point(root, "acme", "big", "disk0", "p1", GIB)
    provider = OpenStackProvider(**openstack_cloud.connect_kwargs())
    emitter = MemoryEmitter("/dialback/burst")
    engine = Engine(EventLog(tmp_path / "burst"), provider, FileImageSource(root), BurstUsage(emitter))
    op = f"fo1g-{int(time.time())}"
    conn = sdk(openstack_cloud)
    t0 = time.monotonic()
    try:
        engine.submit(OperationSpec(id=op, tenant="acme", kind="failover", group="big", volume="disk0"))
        st = engine.drive("acme", op)
        wall = time.monotonic() - t0
        assert st.status == "running", st.error
        assert conn.compute.get_server(st.servers["s0"]["id"]).status == "ACTIVE"
        img = conn.image.get_image(st.images["big/disk0@latest"]["id"])
        assert (img.checksum, img.size) == (image.md5, GIB)
        assert st.servers["s0"]["flavor"] == "m1.tiny"  # smallest flavor whose 1 GB disk holds the image
        figures = {"image_bytes": GIB, "wall_seconds": round(wall, 2),
                   **{k: round(v, 2) for k, v in st.timings.items()}}
        print("\nfailover 1 GiB:", json.dumps(figures))
        if os.environ.get("DIALBACK_BENCH_OUT"):
            with open(os.environ["DIALBACK_BENCH_OUT"], "a") as f:
                f.write(json.dumps({"bench": "burst.failover_1gib", **figures}) + "\n")
        assert figures["image_upload"] > 0 and figures["boot"] > 0
        assert figures["to_running"] >= figures["image_upload"]
    finally:
        engine.request_cleanup("acme", op, "test done")
        engine.drive("acme", op)
        assert nothing_left(tagged_everywhere(conn, "acme", op))
        conn.close()
