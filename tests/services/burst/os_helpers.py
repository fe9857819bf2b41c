"""Helpers for burst tests on the real local OpenStack: direct SDK checks, a burst service subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openstack

from deploy.local.process import free_port
from shared.auth import OPERATE, create_tenant


def sdk(cloud) -> openstack.connection.Connection:
    return openstack.connect(**cloud.connect_kwargs())


def tagged_everywhere(conn, tenant: str, op_id: str) -> dict[str, list[str]]:
    """Every server, image, volume, port, subnet and network carrying the operation's tags, asked directly."""
    tl = [f"dialback-op={op_id}", f"dialback-tenant={tenant}"]
    desc = " ".join(tl)
    return {
        "servers": [s.id for s in conn.compute.servers(tags=",".join(tl))],
        "images": [i.id for i in conn.image.images(tag=tl)],
        "volumes": [v.id for v in conn.block_storage.volumes(metadata={"dialback-op": op_id})],
        "ports": sorted({p.id for p in conn.network.ports(tags=",".join(tl))} |
                        {p.id for p in conn.network.ports(description=desc)}),
        "subnets": [s.id for s in conn.network.subnets(tags=",".join(tl))],
        "networks": sorted({n.id for n in conn.network.networks(tags=",".join(tl))} |
                           {n.id for n in conn.network.networks(description=desc)}),
    }


def nothing_left(found: dict[str, list[str]]) -> bool:
    return all(not v for v in found.values())


@dataclass
class BurstProcess:
    """`python -m services.burst` as a real process, so a test can SIGKILL it.

    Authentication: with ``DIALBACK_TENANTS_FILE`` in ``env`` (e.g. a pipeline's) give that tenant's
    ``token``; otherwise the first start writes a tenants file next to the state dir with ``tenant``
    and a second tenant "intruder" (``intruder_token``). ``admin_token`` is always set.
    """

    state_dir: Path
    images_dir: Path | None
    cloud: object
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)  # e.g. DIALBACK_S3_*: the recovery image source
    proc: subprocess.Popen | None = None
    tenant: str = "acme"
    token: str | None = None
    intruder_token: str | None = None
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """The tenant's bearer token, for every API call."""
        return {"Authorization": f"Bearer {self.token}"}

    def _tenants(self) -> dict[str, str]:
        if "DIALBACK_TENANTS_FILE" in self.env:
            assert self.token, "give the token of a tenant in env's DIALBACK_TENANTS_FILE"
            return {}
        path = self.state_dir.parent / f"burst-{self.port}-tenants.json"
        if self.token is None:
            self.token = create_tenant(path, self.tenant, scopes=[OPERATE])
            self.intruder_token = create_tenant(path, "intruder", scopes=[OPERATE])
        return {"DIALBACK_TENANTS_FILE": str(path)}

    def start(self) -> None:
        env = {**os.environ, **self.cloud.env(), **self._tenants(), "DIALBACK_BURST_ADMIN_TOKEN": self.admin_token,
               "DIALBACK_BURST_PORT": str(self.port),
               "DIALBACK_BURST_STATE_DIR": str(self.state_dir), "DIALBACK_BURST_USAGE": "false",
               "DIALBACK_BURST_TICK_SECONDS": "0.5", "DIALBACK_BURST_WORK_DIR": str(self.state_dir / "work"),
               **({"DIALBACK_BURST_IMAGES_DIR": str(self.images_dir)} if self.images_dir else {}), **self.env}
        log = open(self.state_dir.parent / f"burst-{self.port}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.burst"], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[3])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"burst service did not start; see {log.name}")

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no chance to tidy up
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_status(get, statuses: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    st = {}
    while time.monotonic() < deadline:
        st = get()
        if st.get("status") in statuses:
            return st
        time.sleep(0.3)
    raise AssertionError(f"operation stuck in {st.get('status')}: {st.get('error')}")


def glance_sha256(conn, image_id: str) -> tuple[str, int]:
    """sha256 and size of the image's bytes as Glance serves them (downloaded, not trusted from metadata)."""
    import hashlib

    h, n = hashlib.sha256(), 0
    resp = conn.image.download_image(conn.image.get_image(image_id), stream=True)
    for chunk in resp.iter_content(1 << 20):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n
