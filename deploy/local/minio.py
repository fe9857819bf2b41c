"""MinIO on 127.0.0.1, built from source with ``go install`` (or a ``minio`` on PATH)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import urllib3

from deploy.local import minio_layout
from deploy.local.process import Managed
from deploy.local.tools import go_build

# A pinned commit of github.com/minio/minio (the module proxy's pseudo-version).
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


def binary(cache: Path) -> Path:
    return cache / "minio" / MINIO_VERSION / "minio"


def provision(cache: Path, echo=print) -> Path:
    """Build (once) or find the minio binary; idempotent."""
    on_path = shutil.which("minio")
    if on_path and not os.environ.get("DIALBACK_BUILD_MINIO"):
        return Path(on_path)
    out = binary(cache)
    if out.exists():
        return out
    return go_build("MinIO", "github.com/minio/minio", MINIO_VERSION, out, echo=echo, note="once, a few minutes")


def strict_s3() -> bool:
    """``DIALBACK_STACK_MINIO_STRICT_S3=true``: MD5 ETags on every PUT, as AWS S3 computes them."""
    return os.environ.get("DIALBACK_STACK_MINIO_STRICT_S3", "").lower() in ("1", "true", "yes")


def server(cache: Path, data_dir: Path, port: int, console_port: int, access_key: str, secret_key: str,
           strict: bool | None = None) -> Managed:
    """``strict``: MD5 ETags (default: ``strict_s3()``, from the environment)."""
    exe = provision(cache)
    drive_args, drive_env = minio_layout.server_args(minio_layout.drives(data_dir))
    argv = [str(exe), "server", *drive_args, "--address", f"127.0.0.1:{port}",
            "--console-address", f"127.0.0.1:{console_port}", "--quiet"]
    if not (strict_s3() if strict is None else strict):
        # No MD5 of every PUT for an S3-style ETag (random ETags instead): Dialback never reads
        # ETags; its PUTs carry a CRC32C the server checks (shared/objectstore/minio.py), and
        # segments carry their own CRC32C per record (and an AES-GCM tag when encrypted).
        argv.append("--no-compat")
    env = {"MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_API_REQUESTS_MAX": "256",
           # Deleted objects wait in .minio.sys/tmp/.trash until this sweep (default 5 min): GC'd
           # segments give their disk back sooner, and a benchmark's purge is not removed mid-run.
           "MINIO_API_DELETE_CLEANUP_INTERVAL": "10s", **drive_env}
    return Managed("minio", argv, data_dir, ready=lambda: _ready(port), env=env)


def _ready(port: int) -> bool:
    r = urllib3.request("GET", f"http://127.0.0.1:{port}/minio/health/ready", timeout=2, retries=False)
    return r.status == 200
