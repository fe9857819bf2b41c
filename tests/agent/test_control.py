"""Control API, metrics, bookmarks with hooks, CLI, and `python -m agent` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
import typer
from typer.testing import CliRunner

from agent.cli import register
from agent.runtime import AgentThread
from shared.frames import Kind
from tests.agent.conftest import agent_settings, make_image, wait_for
from tests.agent.fake_ingest import free_port
from tests.agent.test_group import all_records

MiB = 1 << 20


@pytest.fixture
def running(tmp_path, ingest):
    img = make_image(tmp_path / "a.img", 4 * MiB, b"data" * 1000)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img})).start()
    wait_for(lambda: h.group.state.initial_sync_complete, what="initial sync")
    try:
        yield h, f"http://127.0.0.1:{h.agent.control_port}"
    finally:
        h.stop()


def test_status_and_metrics(running):
    h, url = running
    h.group.write("disk0", 0, b"x" * 4096)
    st = httpx.get(f"{url}/status").json()
    g = st["groups"]["grp1"]
    assert g["last_sequence"] == h.group.spool.last_seq
    assert g["initial_sync_complete"] and g["sync_progress"] == 1.0
    assert g["volumes"][0]["volume"] == "disk0" and g["volumes"][0]["size"] == 4 * MiB
    assert st["nbd"]["port"] == h.agent.nbd_port
    wait_for(lambda: httpx.get(f"{url}/status").json()["groups"]["grp1"]["rpo_seconds"] == 0, what="rpo 0")
    text = httpx.get(f"{url}/metrics").text
    for name in ("dialback_agent_rpo_seconds{group=\"grp1\"}", "dialback_agent_spool_records",
                 "dialback_agent_spool_bytes", "dialback_agent_shipped_bytes_total",
                 "dialback_agent_alarm{alarm=\"spool_overflow\",group=\"grp1\"} 0.0"):
        assert name in text
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}


def test_bookmarks_are_ordered_and_validated(running, tmp_path):
    h, url = running
    h.group.write("disk0", 0, b"before")
    r = httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "release-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group"] == "grp1" and body["name"] == "release-1" and body["timestamp_ns"] > 0
    assert body["sequence"] == h.group.spool.last_seq
    dup = httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "release-1"})
    assert dup.status_code == 409 and "already has" in dup.json()["detail"]
    res = httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "dialback.fake"})
    assert res.status_code == 409 and "reserved" in res.json()["detail"]
    unknown = httpx.post(f"{url}/v1/bookmarks", json={"group": "other", "name": "x"})
    assert unknown.status_code == 404


def test_hook_runs_freeze_then_thaw_even_when_it_fails(running, tmp_path):
    h, url = running
    log = tmp_path / "hook.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho $1 >> {log}\n[ \"$1\" = freeze ] && [ -e {tmp_path}/fail ] && exit 3\nexit 0\n")
    hook.chmod(0o755)
    ok = httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "app-1", "hook": str(hook)})
    assert ok.status_code == 200 and log.read_text().split() == ["freeze", "thaw"]
    (tmp_path / "fail").touch()
    last = h.group.spool.last_seq
    bad = httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "app-2", "hook": str(hook)})
    assert bad.status_code == 500 and "exit code 3" in bad.json()["detail"]
    assert log.read_text().split() == ["freeze", "thaw", "freeze", "thaw"]
    assert h.group.spool.last_seq == last  # no bookmark taken
    marks = [r.data() for r in all_records(h.group) if r.kind == Kind.BOOKMARK]
    assert b"app-1" in marks and b"app-2" not in marks


def test_cli_status_and_bookmark(running):
    h, url = running
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = runner.invoke(app, ["agent", "status", "--control", url])
    assert out.exit_code == 0 and "grp1" in out.output and "disk0" in out.output
    out = runner.invoke(app, ["bookmark", "cli-mark", "--group", "grp1", "--control", url])
    assert out.exit_code == 0 and "cli-mark" in out.output
    again = runner.invoke(app, ["bookmark", "cli-mark", "--group", "grp1", "--control", url])
    assert again.exit_code == 1 and "already has" in again.output
    down = runner.invoke(app, ["agent", "status", "--control", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach the agent" in down.output


def test_python_m_agent_protect_runs_and_stops_cleanly(tmp_path, ingest):
    img = make_image(tmp_path / "a.img", 2 * MiB, b"x" * 10000)
    nbd, ctl = free_port(), free_port()
    env = {**os.environ, "DIALBACK_AGENT_TOKEN": "secret-token", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "protect", "--ingest", ingest.url, "--group", "g1",
                             "--volume", f"disk0={img}", "--spool", str(tmp_path / "spool"),
                             "--nbd-port", str(nbd), "--control-port", str(ctl)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def synced():
            try:
                return httpx.get(f"http://127.0.0.1:{ctl}/status").json()["groups"]["g1"]["initial_sync_complete"]
            except httpx.TransportError:
                return False
        wait_for(synced, timeout=30, what="agent process synced")
        wait_for(lambda: ingest.ingest.acked.get("g1", 0) >= 3, what="process shipped its sync")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (tmp_path / "spool" / "g1" / "state.json").exists()
