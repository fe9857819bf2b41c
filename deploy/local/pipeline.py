"""The whole data path as local processes: agent → ingest → Kafka → retention → MinIO → recovery.

Used by the end-to-end tests, the benchmarks and `dialback demo`.

Each Dialback process runs as a subprocess (``python -m ...``) with the
DIALBACK_* environment pointing at the test's real Kafka and MinIO, so tests
can stop, kill and restart any one of them.

Encryption is ON by default (docs/encryption.md): a master key
(``<home>/master.key``, 0600) is created if missing and named by
DIALBACK_MASTER_KEY_FILE for every service, the tenant gets a transport key,
and agents ship sealed batches using ``<home>/<tenant>.credentials.json``.

``tls=True`` serves ingest over HTTPS (a throwaway CA and a 127.0.0.1 certificate in
``<home>/tls``, made by shared/pki) and gives agents the https URL and the CA
file; the default is plain HTTP on loopback.
"""

from __future__ import annotations

import os
import ssl
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.local.process import Managed, free_port
from services.ingest.provision import create_tenant_with_credentials
from shared.crypto.keyring import Keyring, ensure_master_key, load_master_key


_clients = threading.local()


def _http() -> httpx.Client:
    """This thread's HTTP client: one per thread, kept, so polling loops do not build a TLS context per call."""
    c = getattr(_clients, "client", None)
    if c is None:
        c = _clients.client = httpx.Client(timeout=30)
    return c


def _http_ok(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx.get(url, timeout=2, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def control_client(socket_path: Path, timeout: float = 30) -> httpx.Client:
    """An HTTP client for an agent's control API on its Unix socket (base URL http://localhost)."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://localhost",
                        timeout=timeout)


def _socket_ok(socket_path: Path) -> bool:
    try:
        with control_client(socket_path, 2) as c:
            return c.get("/status").status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Agent:
    """A tap process. NBD and the control API on Unix sockets (``nbd_socket``, ``control_socket``); the
    control API also on TCP (``control_url``) with the bearer token in ``control_token_file``, for
    callers that only speak TCP (burst's failback)."""

    managed: Managed
    group: str
    volumes: dict[str, Path]
    nbd_socket: Path
    control_socket: Path
    control_url: str
    control_token_file: Path

    @property
    def nbd_uri(self) -> str:
        """libnbd/nbdfuse/qemu URI of the first volume's export."""
        return f"nbd+unix:///{next(iter(self.volumes))}?socket={self.nbd_socket}"

    def control_token(self) -> str:
        return self.control_token_file.read_text().strip()

    def http(self) -> httpx.Client:
        return control_client(self.control_socket)

    def status(self) -> dict:
        with self.http() as c:
            return c.get("/status", timeout=10).json()

    def group_status(self) -> dict:
        return self.status()["groups"][self.group]

    def bookmark(self, name: str, quiesce: bool = True) -> dict:
        """``quiesce``: run the agent's configured freezes/hook (DIALBACK_AGENT_BOOKMARK_*) around it."""
        with self.http() as c:
            r = c.post("/v1/bookmarks", json={"group": self.group, "name": name, "quiesce": quiesce}, timeout=60)
        r.raise_for_status()
        return r.json()

    def wait_shipped(self, timeout: float = 120.0) -> int:
        """Wait until ingest acknowledged everything spooled; returns that sequence."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            g = self.group_status()
            if (g["initial_sync_complete"] and g["last_sequence"] == g["acked_through"]
                    and not g["resync_pending"] and not g["overflow"]):
                return g["acked_through"]
            time.sleep(0.3)
        raise TimeoutError(f"agent did not ship everything within {timeout}s: {self.group_status()}")


@dataclass
class Pipeline:
    env: dict[str, str]
    home: Path
    tenant: str
    token: str  # the tenant operator's (recovery, exports); agents read theirs from `credentials`
    credentials: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, Managed] = field(default_factory=dict)
    agents: list[Agent] = field(default_factory=list)
    ca_file: Path | None = None  # set when ingest serves HTTPS: what clients trust

    @classmethod
    def create(cls, stack_env: dict[str, str], home: Path, encrypt: bool = True, tls: bool = False) -> "Pipeline":
        """``encrypt``: encryption at rest and agent→ingest ON (the default) or both OFF.
        ``tls``: ingest serves HTTPS with a fresh loopback certificate (agents get the CA file)."""
        home.mkdir(parents=True, exist_ok=True)
        tenant = f"t{uuid.uuid4().hex[:10]}"
        tenants_file = home / "tenants.json"
        crypto: dict[str, str] = {}
        ring = None
        if encrypt:
            master = ensure_master_key(home)
            keyring = home / "keyring.json"
            crypto = {"DIALBACK_MASTER_KEY_FILE": str(master), "DIALBACK_KEYRING_FILE": str(keyring)}
            ring = Keyring(load_master_key(master), keyring)
        credentials = home / f"{tenant}.credentials.json"
        # the agents read their (ingest-only) token from the credentials file; the pipeline's own calls
        # (points, recoveries, exports) use the tenant operator's token
        token = create_tenant_with_credentials(tenants_file, tenant, credentials, ring,
                                               stack_env.get("DIALBACK_BUCKET_PREFIX", "dialback-")).operator_token
        ports = {"ingest": free_port(), "recovery": free_port(), "retention": free_port()}
        env = {
            **stack_env,
            "DIALBACK_HOME": str(home),
            "DIALBACK_TENANTS_FILE": str(tenants_file),
            "DIALBACK_INGEST_PORT": str(ports["ingest"]),
            "DIALBACK_RECOVERY_PORT": str(ports["recovery"]),
            "DIALBACK_RETENTION_WEB_PORT": str(ports["retention"]),
            "DIALBACK_RETENTION_APP_ID": f"retention-{tenant}",
            "DIALBACK_RETENTION_RESCAN_INTERVAL": "2",
            "PYTHONUNBUFFERED": "1",
            **crypto,
        }
        if not encrypt:  # the caller's environment must not switch it back on
            env["DIALBACK_MASTER_KEY_FILE"] = ""
        ca_file = None
        if tls:
            from shared.pki import LOOPBACK, SERVER_AUTH, issue, new_ca, write_private

            tls_dir = home / "tls"
            tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            ca = new_ca("Dialback pipeline CA", days=2)
            leaf = issue(ca, "127.0.0.1", SERVER_AUTH, LOOPBACK, days=2)
            ca_file = tls_dir / "ca.pem"
            ca_file.write_bytes(ca.cert_pem())
            (tls_dir / "ingest.pem").write_bytes(leaf.cert_pem())
            env["DIALBACK_INGEST_TLS_CERT_FILE"] = str(tls_dir / "ingest.pem")
            env["DIALBACK_INGEST_TLS_KEY_FILE"] = str(write_private(tls_dir / "ingest.key", leaf.key_pem()))
        return cls(env, home, tenant, token, credentials, ports, ca_file=ca_file)

    @property
    def ingest_verify(self) -> ssl.SSLContext | bool:
        """``verify=`` for an httpx call to ingest: the pipeline's CA when it serves HTTPS."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def store_env(self) -> dict[str, str]:
        """What another process needs to read this pipeline's objects: S3 settings and, if on, the keys."""
        names = ("DIALBACK_MASTER_KEY_FILE", "DIALBACK_KEYRING_FILE")
        return {k: v for k, v in self.env.items() if k.startswith("DIALBACK_S3_") or k in names}

    def store(self):
        """The object store as the pipeline's services see it (decrypting when encryption is on)."""
        from shared.objectstore.encrypted import EncryptedObjectStore
        from shared.objectstore.minio import MinioObjectStore

        e = self.env
        inner = MinioObjectStore(e["DIALBACK_S3_ENDPOINT"], e["DIALBACK_S3_ACCESS_KEY"], e["DIALBACK_S3_SECRET_KEY"])
        master = e.get("DIALBACK_MASTER_KEY_FILE")
        if not master:
            return inner
        return EncryptedObjectStore(inner, Keyring(load_master_key(master), e["DIALBACK_KEYRING_FILE"]))

    @property
    def ingest_url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.ports['ingest']}"

    @property
    def recovery_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['recovery']}"

    def service(self, name: str) -> Managed:
        if name not in self.services:
            port = self.ports[name]
            scheme, verify = ("https", self.ingest_verify) if name == "ingest" and self.ca_file else ("http", True)
            self.services[name] = Managed(
                name, [sys.executable, "-m", f"services.{name}"], self.home / "run",
                ready=lambda: _http_ok(f"{scheme}://127.0.0.1:{port}/healthz", verify), env=self.env,
            )
        return self.services[name]

    def start(self, *names: str) -> None:
        for n in names or ("ingest", "retention", "recovery"):
            self.service(n).start(timeout=120)

    def start_agent(self, group: str, volumes: dict[str, Path], spool_limit: int | None = None,
                    extra: dict[str, str] | None = None) -> Agent:
        control_port = free_port()
        sockets = Path(tempfile.mkdtemp(prefix="dbp-"))  # short: Unix socket paths stop at 107 bytes
        spool = self.home / f"spool-{group}"
        env = {
            **self.env,
            "DIALBACK_AGENT_INGEST": self.ingest_url,
            "DIALBACK_AGENT_CREDENTIALS_FILE": str(self.credentials),
            "DIALBACK_AGENT_GROUP": group,
            "DIALBACK_AGENT_VOLUMES": ",".join(f"{k}={v}" for k, v in volumes.items()),
            "DIALBACK_AGENT_SPOOL_DIR": str(spool),
            "DIALBACK_AGENT_NBD_SOCKET": str(sockets / "nbd.sock"),
            "DIALBACK_AGENT_CONTROL_SOCKET": str(sockets / "control.sock"),
            "DIALBACK_AGENT_CONTROL_PORT": str(control_port),
            **({"DIALBACK_AGENT_SPOOL_LIMIT_BYTES": str(spool_limit)} if spool_limit else {}),
            **({"DIALBACK_AGENT_INGEST_CA_FILE": str(self.ca_file)} if self.ca_file else {}),
            **(extra or {}),
        }
        m = Managed(f"agent-{group}", [sys.executable, "-m", "agent"], self.home / "run",
                    ready=lambda: _socket_ok(sockets / "control.sock"), env=env)
        m.start(timeout=60)
        agent = Agent(m, group, volumes, sockets / "nbd.sock", sockets / "control.sock",
                      f"http://127.0.0.1:{control_port}", spool / f"{group}.control.token")
        self.agents.append(agent)
        return agent

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def points(self, group: str) -> dict:
        r = _http().get(f"{self.recovery_url}/v1/groups/{group}/points", headers=self.auth(), timeout=30)
        r.raise_for_status()
        return r.json()

    def wait_recoverable(self, group: str, sequence: int, timeout: float = 120.0) -> dict:
        """Wait until the point ``sequence`` is recoverable from MinIO."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = _http().get(f"{self.recovery_url}/v1/groups/{group}/points", headers=self.auth(), timeout=30)
            if r.status_code == 200:
                last = r.json()
                if last["latest"] and last["latest"]["sequence"] >= sequence:
                    return last
            time.sleep(0.3)
        raise TimeoutError(f"sequence {sequence} of {group} not recoverable within {timeout}s: {last}\n{self.logs()}")

    def download(self, group: str, volume: str, out: Path, **at) -> httpx.Response:
        """Stream the volume's image at the point (sequence=, timestamp_ns= or bookmark=) into ``out``."""
        with httpx.stream("GET", f"{self.recovery_url}/v1/groups/{group}/volumes/{volume}/image",
                          params=at, headers=self.auth(), timeout=300) as r:
            if r.status_code != 200:
                r.read()
                return r
            with open(out, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
            return r

    def stop_all(self) -> None:
        for a in self.agents:
            a.managed.stop()
        for s in self.services.values():
            s.stop()

    def purge(self) -> None:
        """Delete this pipeline's tenant data from the stack: its Kafka topics and its bucket.

        For benchmarks, which write gigabytes per run: without it a shared
        stack fills the disk (MinIO then refuses writes). Call after stop_all().
        """
        from concurrent.futures import ThreadPoolExecutor

        from shared.bus.kafka import admin
        from shared.tenancy import tenant_bucket

        adm = admin(self.env["DIALBACK_KAFKA_BOOTSTRAP"])
        topics = [t for t in adm.list_topics(timeout=30).topics if self.tenant in t]
        for fut in (adm.delete_topics(topics, operation_timeout=60).values() if topics else []):
            fut.result(60)
        store, bucket = self.store(), tenant_bucket(self.tenant)
        if store.bucket_exists(bucket):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda info: store.delete(bucket, info.key), list(store.list(bucket))))

    def logs(self) -> str:
        out = []
        for m in [*self.services.values(), *(a.managed for a in self.agents)]:
            try:
                out.append(f"--- {m.name} ---\n" + "\n".join(m.log_file.read_text(errors="replace").splitlines()[-40:]))
            except OSError:
                pass
        return "\n".join(out)


def sha256_file(path: Path, size: int | None = None) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = size if size is not None else 1 << 62
        while remaining > 0 and (chunk := f.read(min(1 << 20, remaining))):
            h.update(chunk)
            remaining -= len(chunk)
    return h.hexdigest()


def is_root() -> bool:
    return os.geteuid() == 0
