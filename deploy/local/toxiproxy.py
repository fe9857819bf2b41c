"""Toxiproxy (a real TCP fault proxy) on 127.0.0.1, built with ``go install`` like MinIO.

The soak harness (bench/soak) routes agent→ingest and services→Kafka/MinIO
through its proxies and injects latency, bandwidth limits, resets, timeouts and
half-open connections via its HTTP API (``Toxiproxy`` below, plain httpx).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from deploy.local.process import Managed, StartError
from deploy.local.tools import go_build

# A release of github.com/Shopify/toxiproxy/v2 the Go module proxy serves (`go list -m -versions`).
TOXIPROXY_VERSION = "v2.5.0"
_PACKAGE = "github.com/Shopify/toxiproxy/v2/cmd/server"  # v2's server command; the binary is named `server`


def binary(cache: Path) -> Path:
    return cache / "toxiproxy" / TOXIPROXY_VERSION / "toxiproxy-server"


def provision(cache: Path, echo=print) -> Path:
    """Build (once) or find the toxiproxy-server binary; idempotent."""
    on_path = shutil.which("toxiproxy-server")
    if on_path and not os.environ.get("DIALBACK_BUILD_TOXIPROXY"):
        return Path(on_path)
    out = binary(cache)
    if out.exists():
        return out
    return go_build("toxiproxy", _PACKAGE, TOXIPROXY_VERSION, out, built_name="server", echo=echo,
                    note="once, under a minute")


def server(cache: Path, run_dir: Path, port: int) -> Managed:
    """A Managed toxiproxy-server with its API on 127.0.0.1:``port``; call ``.start()``."""
    exe = provision(cache)
    argv = [str(exe), "-host", "127.0.0.1", "-port", str(port)]
    return Managed("toxiproxy", argv, run_dir, ready=lambda: Toxiproxy(f"http://127.0.0.1:{port}").healthy())


class Toxiproxy:
    """The parts of toxiproxy's HTTP API the soak needs (https://github.com/Shopify/toxiproxy#http-api)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def healthy(self) -> bool:
        try:
            return self._http.get("/version", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _ok(self, r: httpx.Response, what: str) -> dict:
        if r.status_code >= 300:
            raise StartError(f"toxiproxy refused to {what} ({r.status_code}): {r.text[:300]}")
        return r.json() if r.content else {}

    def create(self, name: str, listen_port: int, upstream: str) -> dict:
        """A proxy from 127.0.0.1:``listen_port`` to ``upstream`` (host:port); replaces one of that name."""
        self._http.delete(f"/proxies/{name}")
        body = {"name": name, "listen": f"127.0.0.1:{listen_port}", "upstream": upstream, "enabled": True}
        return self._ok(self._http.post("/proxies", json=body), f"create proxy {name}")

    def add_toxic(self, proxy: str, name: str, kind: str, attributes: dict, stream: str = "downstream",
                  toxicity: float = 1.0) -> dict:
        """``kind``: latency, bandwidth, reset_peer, timeout, slicer, limit_data, slow_close."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        return self._ok(self._http.post(f"/proxies/{proxy}/toxics", json=body), f"add toxic {name} to {proxy}")

    def remove_toxic(self, proxy: str, name: str) -> None:
        r = self._http.delete(f"/proxies/{proxy}/toxics/{name}")
        if r.status_code not in (204, 404):
            self._ok(r, f"remove toxic {name} from {proxy}")

    def clear(self, proxy: str) -> None:
        """Remove every toxic of ``proxy`` and make sure it is enabled."""
        p = self._ok(self._http.get(f"/proxies/{proxy}"), f"read proxy {proxy}")
        for t in p.get("toxics", []):
            self.remove_toxic(proxy, t["name"])
        if not p.get("enabled", True):
            self.set_enabled(proxy, True)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabled: the listener closes and every connection through it is cut."""
        self._ok(self._http.post(f"/proxies/{proxy}", json={"enabled": enabled}), f"toggle proxy {proxy}")
