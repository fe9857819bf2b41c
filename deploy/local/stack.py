"""`dialback stack up|down|status`: Kafka and MinIO (and optionally OpenStack) on 127.0.0.1.

State lives in ``$DIALBACK_HOME`` (default ~/.local/share/dialback), downloads
and builds in ``$DIALBACK_CACHE`` (default ~/.cache/dialback), so a second
``up`` on the same machine downloads and builds nothing. ``up`` writes
``$DIALBACK_HOME/stack.env``: the DIALBACK_* variables every service reads,
including DIALBACK_MASTER_KEY_FILE (``$DIALBACK_HOME/master.key``, 0600,
generated on the first ``up``): encryption at rest is ON in the local stack.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from deploy.local import compose, kafka, minio, toxiproxy
from deploy.local.private import write_private
from deploy.local.process import Managed, StartError, port_open
from shared.config import default_cache, default_home
from shared.crypto.keyring import ensure_master_key

KAFKA_PORT = int(os.environ.get("DIALBACK_STACK_KAFKA_PORT", 9092))
MINIO_PORT = int(os.environ.get("DIALBACK_STACK_MINIO_PORT", 9000))
# Kafka's heap (512 MiB), native memory and page cache together; 0 leaves it uncapped (docs/foundation.md).
KAFKA_MEMORY_MIB = int(os.environ.get("DIALBACK_STACK_KAFKA_MEMORY_MIB", 2048))


@dataclass
class Stack:
    home: Path
    cache: Path

    @classmethod
    def default(cls) -> "Stack":
        return cls(default_home(), default_cache())

    # -- credentials -----------------------------------------------------
    def credentials(self) -> dict[str, str]:
        path = self.home / "credentials.json"
        if path.exists():
            return json.loads(path.read_text())
        self.home.mkdir(parents=True, exist_ok=True)
        creds = {"s3_access_key": "dialback-" + secrets.token_hex(4), "s3_secret_key": secrets.token_urlsafe(24)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f)
        return creds

    # -- servers -----------------------------------------------------------
    def kafka(self) -> Managed:
        return kafka.server(self.cache, self.home / "kafka", KAFKA_PORT, KAFKA_PORT + 1,
                            memory_limit=KAFKA_MEMORY_MIB << 20 if KAFKA_MEMORY_MIB > 0 else None)

    def minio(self) -> Managed:
        c = self.credentials()
        return minio.server(self.cache, self.home / "minio", MINIO_PORT, MINIO_PORT + 1,
                            c["s3_access_key"], c["s3_secret_key"])

    def master_key(self) -> Path:
        return ensure_master_key(self.home)

    def env(self) -> dict[str, str]:
        c = self.credentials()
        return {
            "DIALBACK_MASTER_KEY_FILE": str(self.master_key()),
            "DIALBACK_KEYRING_FILE": str(self.home / "keyring.json"),
            "DIALBACK_HOME": str(self.home),
            "DIALBACK_KAFKA_BOOTSTRAP": f"127.0.0.1:{KAFKA_PORT}",
            "DIALBACK_S3_ENDPOINT": f"127.0.0.1:{MINIO_PORT}",
            "DIALBACK_S3_ACCESS_KEY": c["s3_access_key"],
            "DIALBACK_S3_SECRET_KEY": c["s3_secret_key"],
            # every service meters into dialback.usage (ingest does whenever it has Kafka)
            "DIALBACK_RETENTION_USAGE": "true",
            "DIALBACK_RECOVERY_USAGE": "true",
        }

    def provision(self, echo=print, dev_tools: bool = True) -> None:
        """What the stack runs on; with ``dev_tools`` also what only tests use (toxiproxy, compose)."""
        kafka.provision(self.cache, echo)
        minio.provision(self.cache, echo)
        if dev_tools:
            toxiproxy.provision(self.cache, echo)  # not started by `up`: the soak harness (bench/soak) runs its own
            try:  # only tests/deploy/test_compose.py needs it; it says so itself when it is missing
                compose.provision(self.cache, echo)
            except StartError as err:
                echo(f"warning: no docker compose plugin ({err}); deploy/compose.yaml is not checked")

    def up(self, echo=print) -> dict[str, str]:
        self.provision(echo, dev_tools=False)
        for name, srv, port in (("kafka", self.kafka(), KAFKA_PORT), ("minio", self.minio(), MINIO_PORT)):
            if not srv.running() and port_open(port):
                raise StartError(f"port {port} on 127.0.0.1 is taken by another process; stop it or set "
                                 f"DIALBACK_STACK_{name.upper()}_PORT to a free port")
            echo(f"starting {name} …")
            srv.start()
        env = self.env()
        self.create_shared_topics(env)
        self.write_env(env)
        return env

    def write_env(self, env: dict[str, str]) -> Path:
        """``$DIALBACK_HOME/stack.env``: the variables every service reads, 0600 (it holds the MinIO root secret)."""
        return write_private(self.home / "stack.env", "".join(f"export {k}={v}\n" for k, v in env.items()))

    @staticmethod
    def create_shared_topics(env: dict[str, str]) -> None:
        """Topic auto-creation is off: make the shared usage/billing topics before any service emits."""
        from services.metering.config import MeteringSettings
        from services.metering.runner import ensure_metering_topics

        ensure_metering_topics(MeteringSettings(kafka_bootstrap=env["DIALBACK_KAFKA_BOOTSTRAP"]))

    def down(self, echo=print) -> None:
        for srv in (self.minio(), self.kafka()):
            if srv.stop():
                echo(f"stopped {srv.name}")

    def status(self) -> list[dict]:
        rows = []
        for srv, addr in ((self.kafka(), f"127.0.0.1:{KAFKA_PORT}"), (self.minio(), f"http://127.0.0.1:{MINIO_PORT}")):
            pid = srv.pid()
            healthy = False
            if pid is not None:
                try:
                    healthy = bool(srv.ready())
                except Exception:  # noqa: BLE001 - any probe failure means unhealthy
                    healthy = False
            row = {"name": srv.name, "address": addr, "pid": pid, "running": pid is not None,
                   "healthy": healthy, "log": str(srv.log_file)}
            if pid is not None and srv.memory_limit and srv.memory_note.exists():
                row["memory"] = srv.memory_note.read_text().strip()
            rows.append(row)
        return rows
