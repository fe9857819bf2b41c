"""The probe's and the fuzzer's checks catch what they claim to: a deliberately leaky service on a real socket.

The service below tells an existing tenant from a missing one (403 vs 404), hands
tenant A's volume to anyone who names A's group, answers 500, and deletes on a
refused call. Each of these must show up as a finding; a clean route must not.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException

from bench.securitylib import fuzz
from bench.securitylib.probe import Probe, finish
from bench.securitylib.world import World
from deploy.local.process import free_port

IDS = {"tenant": "tfeedc0ffee", "group": "g0123456789", "volume": "v9876543210"}
TOKENS = {k: secrets.token_urlsafe(16) for k in ("agent_a", "operator_a", "agent_b", "operator_b", "admin", "garbage")}


def leaky_app(state: dict) -> FastAPI:
    app = FastAPI()
    tenants = {TOKENS["operator_a"]: IDS["tenant"], TOKENS["operator_b"]: "tb"}
    agents = {TOKENS["agent_a"], TOKENS["agent_b"]}

    def caller(authorization: str | None) -> str:
        token = (authorization or "").removeprefix("Bearer ")
        if token in agents:
            raise HTTPException(403, "an agent credential may not")  # every route here is an operator's
        tenant = tenants.get(token)
        if tenant is None:
            raise HTTPException(401, "who are you")
        return tenant

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/v1/tenants/{tenant}/things")
    def things(tenant: str, authorization: str | None = Header(None)):
        if caller(authorization) != tenant:
            raise HTTPException(403 if tenant == IDS["tenant"] else 404, "not yours")  # tells A exists
        return {"things": []}

    @app.get("/v1/groups/{group}")
    def group(group: str, authorization: str | None = Header(None)):
        caller(authorization)
        if group == IDS["group"]:
            return {"group": group, "volumes": [IDS["volume"]]}  # to anyone with a token
        raise HTTPException(404, f"no group {group}")

    @app.post("/v1/groups/{group}/close")
    def close(group: str, authorization: str | None = Header(None)):
        state["closed"] = state.get("closed", 0) + 1  # before the check: a refused call changes things
        if caller(authorization) != IDS["tenant"] or group != IDS["group"]:
            raise HTTPException(404, f"no group {group}")
        return {}

    @app.get("/v1/groups/{group}/boom")
    def boom(group: str):
        raise RuntimeError("unhandled")  # uvicorn answers 500

    @app.get("/v1/tenants/{tenant}/clean")
    def clean(tenant: str, authorization: str | None = Header(None)):
        if caller(authorization) != tenant:
            raise HTTPException(404, f"no tenant {tenant}")
        return {"tenant": tenant}

    return app


class LeakyWorld(World):
    def __init__(self, url: str, state: dict) -> None:
        super().__init__(None, TOKENS, "tb", dict(IDS), {"leaky": url})
        self.state = state

    def snapshot(self) -> dict:
        return {"closed": self.state.get("closed", 0)}


@pytest.fixture(scope="module")
def leaky():
    state: dict = {}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(leaky_app(state), host="127.0.0.1", port=port, log_level="critical"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the leaky service did not start"
            time.sleep(0.05)
    yield LeakyWorld(url, state)
    server.should_exit = True
    t.join(10)


def _kinds(findings: list[dict]) -> set[tuple[str, str]]:
    return {(f["kind"], f["route"]) for f in findings}


def test_probe_reports_each_defect_and_nothing_on_clean_routes(leaky):
    doc = finish(Probe(leaky, seconds=60, services=("leaky",), extra=()).run())
    kinds = _kinds(doc["findings"])
    assert ("unequal_refusal", "leaky GET /v1/tenants/{tenant}/things") in kinds
    assert ("leak", "leaky GET /v1/groups/{group}") in kinds
    assert ("server_error", "leaky GET /v1/groups/{group}/boom") in kinds
    assert ("changed", "* * closed") in kinds
    assert not any("/clean" in route or "/healthz" in route for _, route in kinds), json.dumps(doc["findings"], indent=1)
    assert doc["server_errors"] and doc["cross_tenant_leaks"] and doc["unequal_refusals"]


def test_fuzzer_reports_the_server_error_and_the_leak(leaky):
    rep = fuzz.run(leaky, max_examples=10, seconds=60, services=("leaky",))
    kinds = _kinds(rep.findings)
    assert ("server_error", "GET /v1/groups/{group}/boom") in kinds
    assert ("leak", "GET /v1/groups/{group}") in kinds
    assert not any("/clean" in route for _, route in kinds), kinds
