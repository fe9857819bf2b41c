"""The soak's own servers: Kafka, MinIO and toxiproxy, with each client link through a proxy.

Links (toxiproxy proxy names):
- ``ingest``: agent → ingest (the agent's DIALBACK_AGENT_INGEST names the proxy)
- ``kafka``: every service → Kafka. The broker advertises the proxy's address, so
  after the bootstrap every client connection (producer, consumer, admin) goes
  through the proxy, also the harness's own.
- ``minio``: every service → MinIO (DIALBACK_S3_ENDPOINT names the proxy)

The harness's own calls to recovery and to the agent's control API are direct:
they measure, they are not under test.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import kafka, minio, toxiproxy
from deploy.local.process import Managed, free_port
from shared.config import default_cache

LINKS = ("ingest", "kafka", "minio")


@dataclass
class SoakStack:
    root: Path
    cache: Path = field(default_factory=default_cache)
    ports: dict[str, int] = field(default_factory=dict)
    servers: dict[str, Managed] = field(default_factory=dict)
    proxy: toxiproxy.Toxiproxy | None = None
    access_key: str = field(default_factory=lambda: "soak-" + secrets.token_hex(4))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def start(self, echo=print) -> None:
        """Provision (cached) and start toxiproxy, its proxies, Kafka and MinIO."""
        kafka.provision(self.cache, echo)
        for name in ("toxi_api", "kafka", "kafka_ctl", "minio", "minio_console", "ingest_real",
                     "proxy_ingest", "proxy_kafka", "proxy_minio"):
            self.ports[name] = free_port()
        tp = toxiproxy.server(self.cache, self.root / "toxiproxy", self.ports["toxi_api"])
        tp.start(timeout=30)
        self.servers["toxiproxy"] = tp
        self.proxy = toxiproxy.Toxiproxy(f"http://127.0.0.1:{self.ports['toxi_api']}")
        self.proxy.create("kafka", self.ports["proxy_kafka"], f"127.0.0.1:{self.ports['kafka']}")
        self.proxy.create("minio", self.ports["proxy_minio"], f"127.0.0.1:{self.ports['minio']}")
        self.proxy.create("ingest", self.ports["proxy_ingest"], f"127.0.0.1:{self.ports['ingest_real']}")
        k = kafka.server(self.cache, self.root / "kafka", self.ports["kafka"], self.ports["kafka_ctl"], heap="384m",
                         memory_limit=1536 << 20, advertised_port=self.ports["proxy_kafka"])
        m = minio.server(self.cache, self.root / "minio", self.ports["minio"], self.ports["minio_console"],
                         self.access_key, self.secret_key)
        self.servers["kafka"], self.servers["minio"] = k, m
        k.start(timeout=180)
        m.start(timeout=60)

    def env(self) -> dict[str, str]:
        """DIALBACK_* for the services: Kafka and MinIO through their proxies."""
        return {
            "DIALBACK_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ports['proxy_kafka']}",
            "DIALBACK_S3_ENDPOINT": f"127.0.0.1:{self.ports['proxy_minio']}",
            "DIALBACK_S3_ACCESS_KEY": self.access_key,
            "DIALBACK_S3_SECRET_KEY": self.secret_key,
        }

    @property
    def ingest_port(self) -> int:
        """The port ingest listens on (the proxy ``ingest`` forwards to it)."""
        return self.ports["ingest_real"]

    @property
    def agent_ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy_ingest']}"

    def heal_all(self) -> None:
        """Every proxy enabled and without toxics (before the final catch-up)."""
        for link in LINKS:
            self.proxy.clear(link)

    def stop(self) -> None:
        for name in ("minio", "kafka", "toxiproxy"):
            if name in self.servers:
                self.servers[name].stop()
        shutil.rmtree(self.root, ignore_errors=True)
