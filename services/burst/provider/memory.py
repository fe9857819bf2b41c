"""An in-memory cloud for unit tests; it passes the same contract tests as OpenStack."""

from __future__ import annotations

import hashlib
import itertools
import threading
from pathlib import Path

from services.burst.errors import ProvisionFailed, QuotaExceeded, UnknownFlavor, UnknownNetwork
from services.burst.provider.base import Flavor, Headroom, ImageInfo, Provider, Resource, ServerInfo

DEFAULT_FLAVORS = {"m1.tiny": Flavor("m1.tiny", 1, 512, 1), "m1.small": Flavor("m1.small", 1, 2048, 20)}


class MemoryProvider(Provider):
    def __init__(self, flavors: dict[str, Flavor] | None = None, max_instances: int | None = None,
                 networks: tuple[str, ...] = ("dialback-prod", "dialback-drtest")) -> None:
        self._flavors = dict(flavors or DEFAULT_FLAVORS)
        self.max_instances = max_instances
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # kind -> id -> {"name", "tags", ...}
        self.res: dict[str, dict[str, dict]] = {k: {} for k in ("server", "port", "image", "volume", "subnet", "network")}
        for n in networks:
            self.res["network"][f"shared-{n}"] = {"name": n, "tags": {}}
        self.fail_next_boot = 0  # failure injection: the next N servers go to ERROR
        self.calls: list[str] = []

    def _new(self, kind: str, name: str, tags: dict, **extra) -> str:
        rid = f"{kind}-{next(self._ids)}"
        self.res[kind][rid] = {"name": name, "tags": dict(tags), **extra}
        return rid

    def _find(self, kind: str, name: str, tags: dict) -> str | None:
        for rid, r in self.res[kind].items():
            if r["name"] == name and all(r["tags"].get(k) == v for k, v in tags.items()):
                return rid
        return None

    def flavors(self) -> dict[str, Flavor]:
        return dict(self._flavors)

    def find_network(self, name: str) -> str | None:
        return next((rid for rid, r in self.res["network"].items() if r["name"] == name), None)

    def headroom(self) -> Headroom:
        left = None if self.max_instances is None else self.max_instances - len(self.res["server"])
        return Headroom(instances=left, cores=None, ram_mb=None)

    def ensure_network(self, name: str, cidr: str, tags: dict[str, str]) -> tuple[str, str]:
        with self._lock:
            net = self._find("network", name, tags) or self._new("network", name, tags)
            sub = self._find("subnet", name, tags) or self._new("subnet", name, tags, network=net)
            return net, sub

    def ensure_image(self, name: str, path: Path, tags: dict[str, str]) -> ImageInfo:
        self.calls.append(f"image:{name}")
        with self._lock:
            rid = self._find("image", name, tags)
            if rid is None:
                md5, size = hashlib.md5(), 0
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        md5.update(chunk)
                        size += len(chunk)
                rid = self._new("image", name, tags, checksum=md5.hexdigest(), size=size)
            r = self.res["image"][rid]
            return ImageInfo(rid, r["checksum"], r["size"], "active")

    def ensure_port(self, name: str, network_id: str, tags: dict[str, str]) -> str:
        with self._lock:
            if network_id not in self.res["network"]:
                raise UnknownNetwork(f"network {network_id} does not exist")
            return self._find("port", name, tags) or self._new("port", name, tags, network=network_id)

    def ensure_server(self, name: str, image_id: str, flavor: str, port_id: str | None,
                      tags: dict[str, str]) -> str:
        self.calls.append(f"server:{name}")
        with self._lock:
            found = self._find("server", name, tags)
            if found:
                return found
            if flavor not in self._flavors:
                raise UnknownFlavor(f"flavor {flavor!r} does not exist; known: {', '.join(sorted(self._flavors))}")
            if self.max_instances is not None and len(self.res["server"]) >= self.max_instances:
                raise QuotaExceeded(f"quota exceeded for instances (limit {self.max_instances})")
            status = "ERROR" if self.fail_next_boot > 0 else "ACTIVE"
            self.fail_next_boot = max(0, self.fail_next_boot - 1)
            return self._new("server", name, tags, status=status, port=port_id, image=image_id)

    def wait_active(self, server_id: str, timeout: float) -> ServerInfo:
        r = self.res["server"].get(server_id)
        if r is None or r["status"] != "ACTIVE":
            raise ProvisionFailed(f"server {server_id} went to {r and r['status']} instead of ACTIVE")
        addrs = {}
        if r.get("port"):
            net = self.res["port"][r["port"]]["network"]
            addrs = {self.res["network"][net]["name"]: [f"10.0.0.{int(server_id.split('-')[1]) % 250 + 2}"]}
        return ServerInfo(server_id, "ACTIVE", addrs)

    def list_tagged(self, tags: dict[str, str]) -> list[Resource]:
        return [Resource(kind, rid, r["name"]) for kind, rs in self.res.items() for rid, r in rs.items()
                if tags and all(r["tags"].get(k) == v for k, v in tags.items())]

    def delete(self, resource: Resource, wait: float = 120.0) -> None:
        with self._lock:
            self.res[resource.kind].pop(resource.id, None)
