from __future__ import annotations

import time

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


def agent_settings(tmp_path, ingest_url: str, volumes: dict, **kw) -> AgentSettings:
    base = dict(ingest=ingest_url, token="secret-token", group="grp1",
                volumes=",".join(f"{k}={v}" for k, v in volumes.items()),
                spool_dir=tmp_path / "spool", nbd_port=0, control_port=0, backoff_cap_seconds=0.5)
    base.update(kw)
    return AgentSettings(**base)


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
