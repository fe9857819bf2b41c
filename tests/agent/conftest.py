from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from agent.config import AgentSettings
from tests.agent.fake_ingest import FakeIngest, IngestServer


@pytest.fixture
def ingest():
    server = IngestServer(FakeIngest()).start()
    try:
        yield server
    finally:
        server.stop()


def make_image(path, size: int, content: bytes = b"", offset: int = 0):
    with open(path, "wb") as fh:
        fh.truncate(size)
        if content:
            fh.seek(offset)
            fh.write(content)
    return path


def short_dir() -> Path:
    """A fresh directory with a short path for Unix sockets (pytest's tmp_path may pass their 107-byte limit)."""
    d = Path(tempfile.mkdtemp(prefix="dbk-"))
    atexit.register(shutil.rmtree, d, True)
    return d


def agent_settings(tmp_path, ingest_url: str, volumes: dict, **kw) -> AgentSettings:
    """Settings of an in-process agent: NBD and control API on Unix sockets in a short temp dir."""
    sockets = short_dir()
    base = dict(ingest=ingest_url, token="secret-token", group="grp1",
                volumes=",".join(f"{k}={v}" for k, v in volumes.items()),
                spool_dir=tmp_path / "spool", nbd_socket=sockets / "nbd.sock",
                control_socket=sockets / "control.sock", backoff_cap_seconds=0.5)
    base.update(kw)
    return AgentSettings(**base)


def control_client(handle) -> httpx.Client:
    """An HTTP client for an AgentThread's control API over its Unix socket."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(handle.agent.control_socket)),
                        base_url="http://localhost", timeout=60)


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
