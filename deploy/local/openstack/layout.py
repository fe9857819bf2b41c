"""Where the local OpenStack keeps its venv, config, databases, logs and pid files.

One module owns the paths and ports so that provisioning, start/stop and tests
agree. The venv lives in the cache (built once, shared by checkouts); every
thing that changes at run time lives in the state dir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "RegionOne"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
# A local, loopback-only development cloud: a fixed password keeps `up` idempotent
# and lets other processes reach it from the env file alone.
ADMIN_PASSWORD = "dialback-local-admin"
SERVICE_PASSWORD = "dialback-local-service"
RABBIT_USER = "dialback"
RABBIT_PASSWORD = "dialback-local-rabbit"

PORTS = {
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "nova": 8774,
    "neutron": 9696,
    "cinder": 8776,
    "rabbitmq": 5672,
    "rabbitmq_dist": 25672,
}

SERVICE_USERS = ("glance", "placement", "nova", "neutron", "cinder")


@dataclass(frozen=True)
class Layout:
    cache_dir: Path
    state_dir: Path

    @classmethod
    def of(cls, cache_dir: Path, state_dir: Path) -> "Layout":
        return cls(Path(cache_dir) / "openstack", Path(state_dir) / "openstack")

    @property
    def venv(self) -> Path:
        return self.cache_dir / "venv"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def etc(self) -> Path:
        return self.state_dir / "etc"

    def conf_dir(self, service: str) -> Path:
        return self.etc / service

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def log(self) -> Path:
        return self.state_dir / "log"

    @property
    def run(self) -> Path:
        return self.state_dir / "run"

    def db_url(self, name: str) -> str:
        # Several processes write one SQLite file (cinder-api/-scheduler/-volume): wait for
        # the lock rather than fail with "database is locked" under load.
        return f"sqlite:///{self.data / (name + '.db')}?timeout=60"

    def marker(self, step: str) -> Path:
        """A file whose presence says a one-time setup step finished."""
        return self.state_dir / "done" / step


def url(service: str) -> str:
    suffix = {"keystone": "/v3", "nova": "/v2.1", "cinder": "/v3"}.get(service, "")
    return f"http://{HOST}:{PORTS[service]}{suffix}"
