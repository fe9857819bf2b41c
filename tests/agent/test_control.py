"""Control API, metrics, bookmarks with hooks, CLI, and `python -m agent` as a process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import httpx
import pytest
import typer
from typer.testing import CliRunner

from agent.cli import register
from agent.runtime import AgentThread
from shared.frames import Kind
from tests.agent.conftest import agent_settings, control_client, make_image, short_dir, wait_for
from tests.agent.fake_ingest import free_port
from tests.agent.test_group import all_records

MiB = 1 << 20


@pytest.fixture
def running(tmp_path, ingest):
    img = make_image(tmp_path / "a.img", 4 * MiB, b"data" * 1000)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img})).start()
    wait_for(lambda: h.group.state.initial_sync_complete, what="initial sync")
    try:
        with control_client(h) as client:
            yield h, client
    finally:
        h.stop()


def test_status_and_metrics(running):
    h, ctl = running
    h.group.write("disk0", 0, b"x" * 4096)
    st = ctl.get("/status").json()
    g = st["groups"]["grp1"]
    assert g["last_sequence"] == h.group.spool.last_seq
    assert g["initial_sync_complete"] and g["sync_progress"] == 1.0
    assert g["volumes"][0]["volume"] == "disk0" and g["volumes"][0]["size"] == 4 * MiB
    assert st["nbd"]["socket"] == str(h.agent.nbd_socket) and st["nbd"]["port"] is None
    wait_for(lambda: ctl.get("/status").json()["groups"]["grp1"]["rpo_seconds"] == 0, what="rpo 0")
    text = ctl.get("/metrics").text
    for name in ("dialback_agent_rpo_seconds{group=\"grp1\"}", "dialback_agent_spool_records",
                 "dialback_agent_spool_bytes", "dialback_agent_shipped_bytes_total",
                 "dialback_agent_alarm{alarm=\"spool_overflow\",group=\"grp1\"} 0.0"):
        assert name in text
    assert ctl.get("/healthz").json() == {"status": "ok"}


def test_bookmarks_are_ordered_and_validated(running, tmp_path):
    h, ctl = running
    h.group.write("disk0", 0, b"before")
    r = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "release-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group"] == "grp1" and body["name"] == "release-1" and body["timestamp_ns"] > 0
    assert body["sequence"] == h.group.spool.last_seq
    dup = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "release-1"})
    assert dup.status_code == 409 and "already has" in dup.json()["detail"]
    res = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "dialback.fake"})
    assert res.status_code == 409 and "reserved" in res.json()["detail"]
    unknown = ctl.post("/v1/bookmarks", json={"group": "other", "name": "x"})
    assert unknown.status_code == 404


def _hook(tmp_path):
    log = tmp_path / "hook.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho $1 >> {log}\n[ \"$1\" = freeze ] && [ -e {tmp_path}/fail ] && exit 3\nexit 0\n")
    hook.chmod(0o755)
    return hook, log


@pytest.mark.parametrize("field", [{"hook": "HOOK"}, {"fsfreeze": "/"}, {"hook": "HOOK", "fsfreeze": "/tmp"}])
def test_a_request_naming_a_hook_or_a_mount_is_refused_and_nothing_runs(running, tmp_path, field):
    h, ctl = running
    hook, log = _hook(tmp_path)
    last = h.group.spool.last_seq
    body = {"group": "grp1", "name": "evil", **{k: (str(hook) if v == "HOOK" else v) for k, v in field.items()}}
    r = ctl.post("/v1/bookmarks", json=body)
    assert r.status_code == 422, r.text
    assert "agent's settings" in r.text and "DIALBACK_AGENT_BOOKMARK_HOOK" in r.text
    assert not log.exists()  # the named program never ran
    assert h.group.spool.last_seq == last  # and no bookmark was taken
    other = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "x", "command": "/bin/sh"})
    assert other.status_code == 422  # unknown fields are refused too, not ignored


def test_the_configured_hook_runs_freeze_then_thaw_even_when_it_fails(tmp_path, ingest):
    hook, log = _hook(tmp_path)
    img = make_image(tmp_path / "a.img", 4 * MiB, b"data" * 1000)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img}, bookmark_hook=hook)).start()
    try:
        wait_for(lambda: h.group.state.initial_sync_complete, what="initial sync")
        with control_client(h) as ctl:
            ok = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "app-1"})
            assert ok.status_code == 200 and log.read_text().split() == ["freeze", "thaw"]
            plain = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "crash-1", "quiesce": False})
            assert plain.status_code == 200 and log.read_text().split() == ["freeze", "thaw"]  # hook skipped
            (tmp_path / "fail").touch()
            last = h.group.spool.last_seq
            bad = ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "app-2"})
            assert bad.status_code == 500 and "exit code 3" in bad.json()["detail"]
            assert log.read_text().split() == ["freeze", "thaw", "freeze", "thaw"]
            assert h.group.spool.last_seq == last  # no bookmark taken
        marks = [r.data() for r in all_records(h.group) if r.kind == Kind.BOOKMARK]
        assert b"app-1" in marks and b"crash-1" in marks and b"app-2" not in marks
    finally:
        h.stop()


def test_a_hook_other_users_can_change_is_refused_at_start(tmp_path, ingest):
    hook, _ = _hook(tmp_path)
    hook.chmod(0o777)
    img = make_image(tmp_path / "a.img", 1 * MiB)
    with pytest.raises(ValueError, match="can be changed by another user"):
        AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img}, bookmark_hook=hook)).start()
    with pytest.raises(ValueError, match="absolute"):
        agent_settings(tmp_path, ingest.url, {"disk0": img}, bookmark_hook="hook.sh")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7450", "127.0.0.1.nip.io"])
def test_an_unexpected_host_header_is_refused(running, host):
    _, ctl = running
    r = ctl.get("/status", headers={"Host": host})
    assert r.status_code in (400, 421) and "host" in r.text.lower()
    assert ctl.post("/v1/bookmarks", json={"group": "grp1", "name": "x"}, headers={"Host": host}).status_code in (400, 421)
    assert ctl.get("/status", headers={"Host": "localhost"}).status_code == 200


def test_the_sockets_are_0600_and_other_users_cannot_connect(running):
    h, _ = running
    for path in (h.agent.control_socket, h.agent.nbd_socket):
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_uid == os.geteuid()
    if os.geteuid() != 0:
        return  # changing user needs root; the mode check above is what protects
    path = h.agent.control_socket
    os.chmod(path.parent, 0o755)  # let the other user reach the directory: the socket's mode is what refuses
    probe = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1])\nexcept " \
            "PermissionError:\n sys.exit(13)\nsys.exit(0)"
    for sock in (h.agent.control_socket, h.agent.nbd_socket):
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                              "-c", probe, str(sock)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 13, (res.returncode, res.stderr)
    # the agent's own user still gets in
    assert control_client(h).get("/healthz").status_code == 200


def test_tcp_control_needs_the_token(tmp_path, ingest):
    img = make_image(tmp_path / "a.img", 1 * MiB)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img}, control_port=0)).start()
    try:
        url = f"http://127.0.0.1:{h.agent.control_port}"
        token_file = h.agent.control_token_file
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            r = httpx.get(f"{url}/status", headers=headers)
            assert r.status_code == 401 and "token" in r.json()["detail"], headers
            assert httpx.post(f"{url}/v1/bookmarks", json={"group": "grp1", "name": "x"},
                              headers=headers).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/status", headers=auth).status_code == 200
        # a page reaching 127.0.0.1 by DNS rebinding sends its own name: refused even with the token
        assert httpx.get(f"{url}/status", headers={**auth, "Host": "rebind.example"}).status_code == 400
        app = typer.Typer()
        register(app)
        runner = CliRunner()
        out = runner.invoke(app, ["agent", "status", "--control", url, "--control-token-file", str(token_file)])
        assert out.exit_code == 0 and "grp1" in out.output
        out = runner.invoke(app, ["agent", "status", "--control", url])
        assert out.exit_code == 1 and "401" in out.output
    finally:
        h.stop()


def test_cli_status_and_bookmark(running, monkeypatch):
    h, _ = running
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    sock = str(h.agent.control_socket)
    out = runner.invoke(app, ["agent", "status", "--control", sock])
    assert out.exit_code == 0 and "grp1" in out.output and "disk0" in out.output
    out = runner.invoke(app, ["bookmark", "cli-mark", "--group", "grp1", "--control", sock])
    assert out.exit_code == 0 and "cli-mark" in out.output
    again = runner.invoke(app, ["bookmark", "cli-mark", "--group", "grp1", "--control", sock])
    assert again.exit_code == 1 and "already has" in again.output
    hook = runner.invoke(app, ["bookmark", "x", "--group", "grp1", "--control", sock, "--hook", "/bin/true"])
    assert hook.exit_code == 2 and "--bookmark-hook" in hook.output
    down = runner.invoke(app, ["agent", "status", "--control", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "cannot reach the agent" in down.output


def test_cli_finds_the_socket_of_the_agents_settings(tmp_path, ingest, monkeypatch):
    spool = short_dir()  # default socket: <spool>/<group>.control.sock
    img = make_image(tmp_path / "a.img", 1 * MiB)
    h = AgentThread(agent_settings(tmp_path, ingest.url, {"disk0": img}, spool_dir=spool,
                                   control_socket=None, nbd_socket=None)).start()
    try:
        assert h.agent.control_socket == spool / "grp1.control.sock"
        assert h.agent.nbd_socket == spool / "grp1.nbd.sock"
        monkeypatch.setenv("DIALBACK_AGENT_SPOOL_DIR", str(spool))
        app = typer.Typer()
        register(app)
        out = CliRunner().invoke(app, ["agent", "status"])
        assert out.exit_code == 0 and "grp1" in out.output
        monkeypatch.delenv("DIALBACK_AGENT_SPOOL_DIR")
        out = CliRunner().invoke(app, ["agent", "status", "--spool", str(spool), "--group", "grp1"])
        assert out.exit_code == 0 and "grp1" in out.output
        wait_for(lambda: h.group.state.initial_sync_complete, what="initial sync")
        out = CliRunner().invoke(app, ["bookmark", "found", "--group", "grp1", "--no-quiesce", "--spool", str(spool)])
        assert out.exit_code == 0 and "found" in out.output
    finally:
        h.stop()
    assert not (spool / "grp1.control.sock").exists() and not (spool / "grp1.nbd.sock").exists()


def test_python_m_agent_protect_runs_and_stops_cleanly(tmp_path, ingest):
    img = make_image(tmp_path / "a.img", 2 * MiB, b"x" * 10000)
    ctl = free_port()
    socks = short_dir()
    env = {**os.environ, "DIALBACK_AGENT_TOKEN": "secret-token", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "agent", "protect", "--ingest", ingest.url, "--group", "g1",
                             "--volume", f"disk0={img}", "--spool", str(tmp_path / "spool"),
                             "--nbd-socket", str(socks / "nbd.sock"), "--control-socket", str(socks / "c.sock"),
                             "--control-port", str(ctl)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def synced():
            try:
                tok = (tmp_path / "spool" / "g1.control.token").read_text().strip()
                r = httpx.get(f"http://127.0.0.1:{ctl}/status", headers={"Authorization": f"Bearer {tok}"})
                return r.json()["groups"]["g1"]["initial_sync_complete"]
            except (httpx.TransportError, OSError, KeyError):
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
