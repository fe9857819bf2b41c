"""Provision, start, stop and inspect the local OpenStack control plane.

`provision(cache_dir)` builds the venv once. `start(state_dir)` renders the
config, creates the databases on first use, starts every process, fills the
catalog and returns how to reach the cloud; it is idempotent (a running
control plane is left alone). `stop` ends the processes and keeps the data,
so the next `start` is warm. Logs: <state_dir>/openstack/log.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.local.openstack import catalog, configure, dbsync, services, venv
from deploy.local.openstack import layout as L
from deploy.local.private import write_private
from deploy.local.process import StartError
from shared.config import default_cache, default_home


@dataclass(frozen=True)
class OpenStackEndpoints:
    auth_url: str
    username: str
    password: str
    project_name: str
    region_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    def env(self) -> dict[str, str]:
        """The DIALBACK_OS_* variables the burst service and the test fixture read."""
        return {f"DIALBACK_OS_{k.upper()}": v for k, v in asdict(self).items()}

    def connect_kwargs(self) -> dict[str, str]:
        return {**asdict(self), "identity_api_version": "3"}


def _layout(state_dir: Path | None, cache_dir: Path | None) -> L.Layout:
    return L.Layout.of(Path(cache_dir or default_cache()), Path(state_dir or default_home()))


RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def ensure_rabbitmq() -> bool:
    """Install Debian's rabbitmq-server if absent (root only); True if it installed."""
    if RABBITMQ_SERVER.exists():
        return False
    if os.geteuid() != 0:
        raise StartError("RabbitMQ is missing: run `apt-get install -y rabbitmq-server` as root, then retry.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rabbitmq-server"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise StartError(f"`{' '.join(cmd)}` failed: {r.stderr.strip()[-500:]}")
    return True


def provision(cache_dir: Path | None = None) -> bool:
    """Install RabbitMQ and build the OpenStack venv unless present; True if anything was built."""
    lay = _layout(None, cache_dir)
    installed = ensure_rabbitmq()
    return venv.ensure(lay, lay.cache_dir / "venv-build.log") or installed


def endpoints() -> OpenStackEndpoints:
    return OpenStackEndpoints(auth_url=L.url("keystone"), username=L.ADMIN_USER, password=L.ADMIN_PASSWORD,
                              project_name=L.ADMIN_PROJECT, region_name=L.REGION)


def start(state_dir: Path | None = None, cache_dir: Path | None = None, timings: dict | None = None) -> OpenStackEndpoints:
    timings = {} if timings is None else timings
    lay = _layout(state_dir, cache_dir)
    t = time.monotonic()
    provision(cache_dir)
    timings["venv"] = time.monotonic() - t
    configure.render(lay)
    t = time.monotonic()
    dbsync.sync_all(lay)
    timings["databases"] = time.monotonic() - t
    t = time.monotonic()
    services.rabbitmq(lay).start(timeout=120)
    services.api(lay, "keystone").start(timeout=120)
    timings["keystone"] = time.monotonic() - t
    t = time.monotonic()
    catalog.run("identity")
    timings["identity_catalog"] = time.monotonic() - t
    t = time.monotonic()
    rest = [p for p in services.all_processes(lay) if p.name not in ("rabbitmq", "keystone-api")]
    # nova-compute must report after this moment (if it starts now); if it was running, any report will do
    since = 0.0 if services.daemon(lay, "nova-compute").running() else time.time() - 1
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        for f in [pool.submit(p.start, 180) for p in rest]:
            f.result()
    timings["services"] = time.monotonic() - t
    t = time.monotonic()
    catalog.run("resources", since)
    timings["resources"] = time.monotonic() - t
    ep = endpoints()
    _write_client_files(lay, ep)
    return ep


def stop(state_dir: Path | None = None, cache_dir: Path | None = None) -> list[str]:
    """Stop every process (daemons first, RabbitMQ last); returns the names that were running."""
    lay = _layout(state_dir, cache_dir)
    procs = list(reversed(services.all_processes(lay)))
    stopped = []
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        for p, was in zip(procs[:-1], pool.map(lambda p: p.stop(30), procs[:-1])):
            if was:
                stopped.append(p.name)
    if procs[-1].stop(30):
        stopped.append(procs[-1].name)
    return stopped


def status(state_dir: Path | None = None, cache_dir: Path | None = None) -> dict[str, dict]:
    """Each process: running or not, pid, and (for APIs) whether it answers."""
    lay = _layout(state_dir, cache_dir)
    out = {}
    for p in services.all_processes(lay):
        pid = p.pid()
        entry = {"running": pid is not None, "pid": pid, "log": str(p.log_file)}
        if p.name.endswith("-api") and pid is not None:
            entry["answers"] = services._http_ready(L.PORTS[p.name[:-4]])
        out[p.name] = entry
    return out


def _write_client_files(lay: L.Layout, ep: OpenStackEndpoints) -> None:
    # All three hold the admin password: owner-only, like stack.env.
    write_private(lay.state_dir / "endpoints.json", json.dumps(asdict(ep), indent=2) + "\n")
    write_private(lay.state_dir / "openstack.env", "".join(f"{k}={v}\n" for k, v in ep.env().items()))
    write_private(lay.state_dir / "clouds.yaml", (
        "clouds:\n  dialback-local:\n    auth:\n"
        f"      auth_url: {ep.auth_url}\n      username: {ep.username}\n      password: {ep.password}\n"
        f"      project_name: {ep.project_name}\n      user_domain_name: Default\n"
        f"      project_domain_name: Default\n    region_name: {ep.region_name}\n"
        "    identity_api_version: 3\n"))
