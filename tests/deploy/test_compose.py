"""deploy/compose.yaml: `docker compose config` accepts it, and what it configures works with the
services' own settings (ports, bind hosts, TLS, the master key), read from the rendered model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI

from deploy import healthcheck
from deploy.local import compose
from deploy.local.process import StartError, free_port
from services.analyzer.config import AnalyzerSettings
from services.burst.config import BurstSettings
from services.ingest.config import IngestSettings
from services.metering.config import MeteringSettings
from services.recovery.config import RecoverySettings
from shared.config import default_cache
from tests.servers import unavailable
from tests.tlscerts import make_pki, serve_https

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
HTTP_SERVICES = {"ingest": IngestSettings, "recovery": RecoverySettings, "metering": MeteringSettings,
                 "burst": BurstSettings, "analyzer": AnalyzerSettings}


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    try:
        return compose.command(default_cache())
    except StartError as err:
        unavailable("docker compose (built with go from the module proxy)", err)


def _config(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DIALBACK_", "MINIO_", "MASTER_KEY", "TLS_", "COMPOSE_"))}
    return subprocess.run([*cmd, "-f", str(COMPOSE_FILE), "config", "--format", "json"], capture_output=True,
                          text=True, env={**clean, **env}, timeout=120)


@pytest.fixture(scope="module")
def secrets_env(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("compose")
    (d / "master.key").write_bytes(os.urandom(32))
    return {"MINIO_ROOT_PASSWORD": "compose-test-secret", "MASTER_KEY_FILE": str(d / "master.key"),
            "TLS_CERT_FILE": str(d / "tls.crt"), "TLS_KEY_FILE": str(d / "tls.key")}


@pytest.fixture(scope="module")
def model(compose_cmd, secrets_env) -> dict:
    r = _config(compose_cmd, secrets_env)
    assert r.returncode == 0, f"`docker compose config` refused deploy/compose.yaml:\n{r.stderr}"
    return json.loads(r.stdout)


def _env(svc: dict) -> dict[str, str]:
    return {k: v for k, v in (svc.get("environment") or {}).items() if v is not None}


@pytest.mark.parametrize("missing", ["MASTER_KEY_FILE", "MINIO_ROOT_PASSWORD", "TLS_CERT_FILE", "TLS_KEY_FILE"])
def test_required_secrets_are_refused_when_missing(compose_cmd, secrets_env, missing):
    r = _config(compose_cmd, {k: v for k, v in secrets_env.items() if k != missing})
    assert r.returncode != 0 and f"required variable {missing} is missing" in r.stderr, r.stderr


def test_every_dialback_service_is_there(model):
    want = {"kafka", "minio", "ingest", "retention", "recovery", "metering", "burst", "analyzer"}
    assert want <= set(model["services"])


def test_encryption_at_rest_is_on_everywhere(model):
    for name, svc in model["services"].items():
        if name in ("kafka", "minio"):
            continue
        env = _env(svc)
        assert env["DIALBACK_MASTER_KEY_FILE"] == "/run/secrets/master_key", name
        assert "master_key" in {s["source"] for s in svc.get("secrets", [])}, f"{name} lacks the master key"
    assert model["secrets"]["master_key"]["file"].endswith("master.key")


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_http_services_bind_their_published_port_over_tls(model, name, monkeypatch):
    """The service's own settings, built from the container's environment, agree with the
    published port, accept the bind host (metering refuses a non-loopback one without TLS)."""
    svc = model["services"][name]
    for k in list(os.environ):
        if k.startswith("DIALBACK_"):
            monkeypatch.delenv(k)
    for k, v in _env(svc).items():
        monkeypatch.setenv(k, str(v))
    s = HTTP_SERVICES[name]()
    host, port = getattr(s, f"{name}_host"), getattr(s, f"{name}_port")
    assert host == "0.0.0.0" and s.tls_enabled
    published = {(p["target"], p.get("host_ip")) for p in svc["ports"]}
    assert (port, "127.0.0.1") in published, f"{name} listens on {port} but publishes {published}"
    assert svc["healthcheck"]["test"][-2:] == ["https", str(port)]
    assert {"tls_cert", "tls_key"} <= {x["source"] for x in svc["secrets"]}


def test_recovery_listens_where_its_settings_say(model):
    assert RecoverySettings.model_fields["recovery_port"].default in {
        p["target"] for p in model["services"]["recovery"]["ports"]}


def test_healthcheck_probe_answers_over_tls(tmp_path):
    pki = make_pki(tmp_path)
    app = FastAPI()
    app.get("/healthz")(lambda: {"ok": True})
    with serve_https(app, {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}) as port:
        assert healthcheck.main(["https", str(port)]) == 0
        assert healthcheck.main(["http", str(port)]) == 1  # plain HTTP to a TLS port: unhealthy
    assert healthcheck.main(["https", str(free_port())]) == 1
    assert healthcheck.main(["ftp", "1"]) == 2


def test_provision_builds_once_and_links_the_plugin(tmp_path, monkeypatch):
    builds = []

    def fake_build(what, module, version, package, out, ldflags="", echo=print, note=""):
        builds.append((module, version, package))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("#!/bin/sh\n")
        return out

    monkeypatch.setattr(compose, "go_build_module", fake_build)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    out = compose.provision(tmp_path / "cache", echo=lambda m: None)
    assert out == compose.binary(tmp_path / "cache")
    assert builds == [(compose.COMPOSE_MODULE, compose.COMPOSE_VERSION, "cmd")]
    plugin = tmp_path / "docker" / "cli-plugins" / "docker-compose"
    assert plugin.resolve() == out.resolve()
    compose.provision(tmp_path / "cache", echo=lambda m: None)
    assert len(builds) == 1  # cached
    plugin.unlink()
    plugin.write_text("someone else's plugin")
    compose.provision(tmp_path / "cache", echo=lambda m: None)
    assert plugin.read_text() == "someone else's plugin"  # never replaced
