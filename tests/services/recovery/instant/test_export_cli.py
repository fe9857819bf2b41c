"""``dialback export start|list|stop`` against a real recovery API (uvicorn on 127.0.0.1, in-memory store)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import typer
import uvicorn
from typer.testing import CliRunner

from services.recovery.cli import register
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.instant.history import GROUP, VOLUMES, history, lease_keys, make_client, nbd_sha256, sha


@pytest.fixture
def served(tmp_path):
    store = MemoryObjectStore()
    sim = history(store, "acme")
    client, headers, _ = make_client(store, tmp_path, ("acme",))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "recovery API did not start"
    token = headers["acme"]["Authorization"].split()[1]
    yield ["--recovery", f"http://127.0.0.1:{port}", "--token", token], store, sim
    server.should_exit = True
    t.join(20)


def test_start_list_stop(served):
    conn, store, sim = served
    app = typer.Typer()
    register(app)
    run = CliRunner().invoke
    res = run(app, ["export", "start", GROUP, "--volume", "disk0", "--latest", "--overlay", "--json", *conn])
    assert res.exit_code == 0, res.output
    e = json.loads(res.stdout)
    assert e["mode"] == "overlay" and e["uri"].startswith("nbd://127.0.0.1:")
    assert nbd_sha256(e["port"], e["export_name"], VOLUMES["disk0"]) == sha(sim.reference(e["sequence"])["disk0"])
    res = run(app, ["export", "list", GROUP, "--json", *conn])
    assert res.exit_code == 0 and [x["id"] for x in json.loads(res.stdout)["exports"]] == [e["id"]]
    res = run(app, ["export", "list", GROUP, *conn])
    assert res.exit_code == 0 and "overlay" in res.stdout
    res = run(app, ["export", "stop", GROUP, e["id"], *conn])
    assert res.exit_code == 0, res.output
    assert lease_keys(store, sim.bucket) == []
    res = run(app, ["export", "stop", GROUP, e["id"], *conn])
    assert res.exit_code == 1 and "404" in res.output
    res = run(app, ["export", "start", GROUP, "--volume", "disk0", "--latest", "--at-seq", "3", *conn])
    assert res.exit_code == 1 and "exactly one of" in " ".join(res.output.split())
    res = run(app, ["export", "start", GROUP, "--volume", "disk0", "--at-seq", "1", *conn])
    assert res.exit_code == 1 and "422" in res.output
