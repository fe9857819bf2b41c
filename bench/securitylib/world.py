"""The real services on a real Kafka and MinIO, two tenants, and tenant A's real resources.

Started through deploy/local/pipeline.py (ingest, retention, recovery, metering,
analyzer as ``python -m services.<name>``). Burst runs its real app and engine
with the in-memory cloud (services/burst/provider/memory.py), since no OpenStack
is started here: every burst route is reachable, nothing is provisioned.

Tenant A gets, each with a random name that serves as a leak marker: a protection
group with one volume shipped through ingest by a real agent, a bookmark (a
recovery point), an instant-access export, a burst failover, a metering licence
and an analyzer profile. Tenant B gets its credentials (agent and operator) and
nothing else. Tokens (``World.tokens``): A's agent credential (scope ingest, read
from the credentials file the pipeline's agent ships with), A's operator
credential (``Pipeline.token``, scope operate), B's two, the provider's admin
token (every service's DIALBACK_*_ADMIN_TOKEN and the analyzer's token) and a
garbage one.
"""

from __future__ import annotations

import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.securitylib.principals import tenant_of
from deploy.local.pipeline import Pipeline
from deploy.local.process import Managed, free_port
from services.ingest.provision import create_tenant_with_credentials
from shared.credentials import read_credentials
from shared.crypto.keyring import Keyring, load_master_key

# service -> the DIALBACK_* variable naming its port (pipeline.py sets ingest, recovery, retention)
EXTRA_PORTS = {"metering": "DIALBACK_METERING_PORT", "analyzer": "DIALBACK_ANALYZER_PORT",
               "burst": "DIALBACK_BURST_PORT"}
OPENAPI_SERVICES = ("ingest", "recovery", "metering", "burst", "analyzer")
VOLUME_BYTES = 1 << 20


def _hex(n: int = 8) -> str:
    return secrets.token_hex(n // 2)


@dataclass
class World:
    pipeline: Pipeline
    tokens: dict[str, str]
    b_tenant: str
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> A's real value
    urls: dict[str, str] = field(default_factory=dict)
    # tenant (principals.tenant_of) -> A's names it stored in its own namespace by an accepted write (B's
    # agent may register a group of A's group's name; B's own group then names it): not a leak when
    # any of B's principals is shown them.
    owned: dict[str, set[str]] = field(default_factory=dict)

    def stored(self, who: str, method: str, ok: bool, asked: str) -> None:
        if method.upper() != "GET" and ok:
            self.owned.setdefault(tenant_of(who), set()).update(
                v for k, v in self.markers().items() if not k.startswith("token.") and v in asked)

    def leaked(self, who: str, owner: bool, asked: str, answer: str) -> list[str]:
        """Names of the markers in ``answer`` that ``who`` should not see (tokens: nobody)."""
        own = self.owned.get(tenant_of(who), set())
        return [name for name, value in self.markers().items() if value in answer and (
            name.startswith("token.") or (not owner and value not in asked and value not in own))]

    @property
    def a_tenant(self) -> str:
        return self.pipeline.tenant

    def markers(self) -> dict[str, str]:
        """Strings that only tenant A's data (or a secret) contains: none may reach anyone else."""
        return {**{f"a.{k}": v for k, v in self.ids.items() if k != "feature"},
                **{f"token.{k}": v for k, v in self.secrets().items()}}

    def secrets(self) -> dict[str, str]:
        return {k: v for k, v in self.tokens.items() if k != "garbage"}

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def snapshot(self) -> dict:
        """What tenant A has, as its owner (and the provider) sees it; equal before and after probing."""
        a, i, u = self.bearer("operator_a"), self.ids, self.urls
        gets = {
            "ingest.group": (f"{u['ingest']}/v1/groups/{i['group']}", self.bearer("agent_a")),
            "recovery.points": (f"{u['recovery']}/v1/groups/{i['group']}/points", a),
            "recovery.exports": (f"{u['recovery']}/v1/groups/{i['group']}/exports", a),
            "burst.operations": (f"{u['burst']}/v1/tenants/{i['tenant']}/operations", a),
            "burst.events": (f"{u['burst']}/v1/tenants/{i['tenant']}/operations/{i['op_id']}/events", a),
            "metering.licences": (f"{u['metering']}/v1/tenants/{i['tenant']}/licences", a),
            "analyzer.profiles": (f"{u['analyzer']}/v1/profiles", a),
        }
        out = {}
        with httpx.Client(timeout=30) as c:
            for name, (url, headers) in gets.items():
                r = c.get(url, headers=headers)
                out[name] = (r.status_code, _stable(r.json() if r.content else None))
        return out

    def stop(self) -> None:
        self.pipeline.stop_all()


_VOLATILE = {"map_seconds", "lease", "expires", "renewed", "updated", "last_tick"}


def _stable(doc):
    """Drop fields that move on their own (lease renewals, timings), so the snapshot shows only real changes."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in _VOLATILE}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def start_world(stack_env: dict[str, str], home: Path, log=lambda msg: None) -> World:
    """Start every service, create tenants A and B, seed A; the caller stops it (World.stop)."""
    p = Pipeline.create(stack_env, home)
    admin = secrets.token_urlsafe(32)
    b_tenant = f"t{_hex(10)}"
    ring = Keyring(load_master_key(p.env["DIALBACK_MASTER_KEY_FILE"]), p.env["DIALBACK_KEYRING_FILE"])
    b = create_tenant_with_credentials(Path(p.env["DIALBACK_TENANTS_FILE"]), b_tenant,
                                       home / f"{b_tenant}.credentials.json", ring,
                                       stack_env.get("DIALBACK_BUCKET_PREFIX", "dialback-"))
    for name, var in EXTRA_PORTS.items():
        p.ports[name] = free_port()
        p.env[var] = str(p.ports[name])
    p.env.update({
        "DIALBACK_METERING_ADMIN_TOKEN": admin, "DIALBACK_BURST_ADMIN_TOKEN": admin,
        "DIALBACK_ANALYZER_TOKEN": admin,  # the provider's: acts for the ?tenant= it names
        "DIALBACK_ANALYZER_PROFILE_DIR": str(home / "profiles"),
        "DIALBACK_METERING_GROUP": f"metering-{p.tenant}",
        "DIALBACK_METERING_TRANSACTIONAL_ID": f"metering-{p.tenant}",
        "DIALBACK_METERING_STATE_TOPIC": f"dialback.metering.state.{p.tenant}",
        "DIALBACK_BURST_STATE_DIR": str(home / "burst"), "DIALBACK_BURST_WORK_DIR": str(home / "burst-work"),
        "DIALBACK_BURST_TICK_SECONDS": "0.5",
    })
    port = p.ports["burst"]
    p.services["burst"] = Managed("burst", [sys.executable, "-m", "bench.securitylib.burst_app"], home / "run",
                                  ready=lambda: _ok(f"http://127.0.0.1:{port}/healthz"), env=p.env)
    tokens = {"agent_a": read_credentials(p.credentials).token, "operator_a": p.token,
              "agent_b": b.agent.token, "operator_b": b.operator_token,
              "admin": admin, "garbage": secrets.token_urlsafe(32)}
    w = World(p, tokens, b_tenant)
    w.urls = {n: f"http://127.0.0.1:{p.ports[n]}" for n in (*OPENAPI_SERVICES, "retention")}
    try:
        log("starting ingest, retention, recovery, metering, analyzer, burst")
        p.start("ingest", "retention", "recovery", "metering", "analyzer", "burst")
        _seed(w, home, log)
    except BaseException:
        log(p.logs())
        w.stop()
        raise
    return w


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _seed(w: World, home: Path, log) -> None:
    p, u = w.pipeline, w.urls
    ids = w.ids
    ids.update(tenant=p.tenant, group=f"g{_hex(10)}", volume=f"v{_hex(10)}", bookmark=f"bm{_hex(10)}",
               op_id=f"op{_hex(10)}", name=f"prof{_hex(10)}", feature="protection")
    disk = home / "a-disk.img"
    disk.write_bytes(secrets.token_bytes(VOLUME_BYTES))
    log(f"tenant A {p.tenant}: shipping group {ids['group']} through ingest")
    agent = p.start_agent(ids["group"], {ids["volume"]: disk})
    agent.wait_shipped()
    seq = agent.bookmark(ids["bookmark"])["sequence"]
    p.wait_recoverable(ids["group"], seq)
    a, admin = w.bearer("operator_a"), w.bearer("admin")
    with httpx.Client(timeout=60) as c:
        r = c.post(f"{u['recovery']}/v1/groups/{ids['group']}/exports", headers=a,
                   json={"volume": ids["volume"], "latest": True})
        _must(r, "instant-access export")
        ids["export_id"] = r.json()["id"]
        r = c.put(f"{u['metering']}/v1/tenants/{p.tenant}/licences/protection", headers=admin,
                  json={"enabled": True})
        _must(r, "metering licence")
        r = c.put(f"{u['analyzer']}/v1/profiles/{ids['name']}", headers=a, content=_profile(home, ids))
        _must(r, "analyzer profile")
        r = c.post(f"{u['burst']}/v1/operations", headers=a, json={
            "id": ids["op_id"], "tenant": p.tenant, "kind": "failover", "group": ids["group"],
            "volume": ids["volume"]})
        _must(r, "burst failover")
        deadline = time.monotonic() + 90
        while (st := c.get(f"{u['burst']}/v1/tenants/{p.tenant}/operations/{ids['op_id']}",
                           headers=a).json())["status"] not in ("running", "failed", "cleaned"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"burst failover did not reach running: {st}")
            time.sleep(0.3)
        if st["status"] != "running":
            raise RuntimeError(f"burst failover of tenant A ended {st['status']}: {st}")
    log(f"tenant A seeded: {ids}")


def _must(r: httpx.Response, what: str) -> None:
    if r.status_code >= 300:
        raise RuntimeError(f"seeding {what} failed: {r.status_code} {r.text}")


def _profile(home: Path, ids: dict[str, str]) -> bytes:
    import numpy as np

    from agent.profile import synthetic
    from agent.profile.format import Header

    path = home / "a.profile"
    synthetic.write_profile(str(path), Header(ids["name"], ids["volume"], VOLUME_BYTES), 1_700_000_000,
                            np.full(600, 1e6))
    return path.read_bytes()
