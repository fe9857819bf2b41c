"""A tenant cannot make the burst host fetch a URL of its choosing, nor read what a tap or a hook said.

The "reverse taps" here are real HTTP servers on loopback ports (http.server in a
thread) that record every request and answer with a secret body; the burst
service is the real app over HTTP (TestClient) with a real httpx client to them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from services.burst.app import create_app
from services.burst.config import BurstSettings
from services.burst.model import OperationSpec
from tests.services.burst.test_failback_memory import world  # noqa: F401 - fixture

SECRET = "s3cr3t-body-9f1c"


class Tap:
    """A loopback HTTP server that answers every request with ``status`` and a body holding SECRET."""

    def __init__(self, status: int = 500, location: str | None = None) -> None:
        self.requests: list[str] = []
        tap = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                tap.requests.append(f"{self.command} {self.path}")
                body = json.dumps({"detail": SECRET}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.authority = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.authority}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def taps():
    made: list[Tap] = []

    def make(**kw) -> Tap:
        made.append(Tap(**kw))
        return made[-1]

    yield make
    for t in made:
        t.close()


@pytest.fixture
def service(world, tokens, tmp_path):  # noqa: F811 - the imported fixture
    engine, original, cloud, _ = world
    engine.failback.http = httpx.Client(timeout=5)  # a real client: the taps are real servers
    root = tmp_path / "failback-root"
    (root / "acme").mkdir(parents=True)
    target = root / "acme" / "home.img"
    target.write_bytes(original.read_bytes())
    app = create_app(BurstSettings(burst_tick_seconds=60, burst_failback_root=root, **tokens.settings()),
                     engine=engine)
    app.state.burst.schedule = lambda tenant, op_id: None  # the test drives, so each step is in its order
    with TestClient(app, headers=tokens.bearer(tokens.acme)) as client:
        yield engine, client, str(target)


def _failback(client, target: str, url: str):
    return client.post("/v1/tenants/acme/operations/fo-1/failback",
                       json={"reverse_group": "g1-back", "target": target, "agent_url": url})


def _tenant_view(client) -> str:
    return client.get("/v1/tenants/acme/operations/fo-1").text + client.get(
        "/v1/tenants/acme/operations/fo-1/events").text


def test_a_tenant_chosen_url_is_refused_and_never_contacted(service, taps):
    engine, client, target = service
    inside = taps()
    before = len(engine.events.read("acme", "fo-1"))
    for url in (inside.url, f"{inside.url}/v1/anything", f"http://user:pw@{inside.authority}"):
        r = _failback(client, target, url)
        assert r.status_code == 422 and ("agent_url" in r.text or "ALLOWED_HOSTS" in r.text), r.text
    assert "DIALBACK_BURST_FAILBACK_ALLOWED_HOSTS" in _failback(client, target, inside.url).text
    assert inside.requests == [], "the burst host contacted a URL the tenant chose"
    assert len(engine.events.read("acme", "fo-1")) == before, "a refused request recorded something"


def test_an_allowed_tap_answer_is_never_echoed_to_the_tenant(service, taps, caplog):
    engine, client, target = service
    tap = taps(status=500)
    engine.failback.allowed = frozenset({tap.authority})  # the provider allowed this tap
    with caplog.at_level(logging.WARNING, logger="dialback.burst"):
        assert _failback(client, target, tap.url).status_code == 202
        st = engine.drive("acme", "fo-1")
    assert st.status == "running"
    assert tap.requests == ["POST /v1/bookmarks"]
    assert "provider log reference" in st.error and "HTTP 500" in st.error
    view = _tenant_view(client)
    assert "FailbackFailed" in view and SECRET not in view, "the tap's answer reached the tenant"
    assert SECRET in caplog.text, "the provider's log keeps the tap's answer"
    assert st.failback["requested_by"] == "tenant acme"


def test_a_redirect_from_the_tap_is_not_followed(service, taps):
    engine, client, target = service
    elsewhere = taps(status=200)
    tap = taps(status=307, location=f"{elsewhere.url}/v1/bookmarks")
    engine.failback.allowed = frozenset({tap.authority})
    assert _failback(client, target, tap.url).status_code == 202
    st = engine.drive("acme", "fo-1")
    assert st.status == "running" and "HTTP 307" in st.error
    assert tap.requests == ["POST /v1/bookmarks"] and elsewhere.requests == []
    assert SECRET not in _tenant_view(client)


def test_a_tap_no_longer_allowed_is_not_contacted_when_the_failback_runs(service, taps):
    engine, client, target = service
    tap = taps(status=200)
    engine.failback.allowed = frozenset({tap.authority})
    assert _failback(client, target, tap.url).status_code == 202
    engine.failback.allowed = frozenset()  # the provider removed it before the worker ran
    st = engine.drive("acme", "fo-1")
    assert st.status == "running" and "DIALBACK_BURST_FAILBACK_ALLOWED_HOSTS" in st.error
    assert tap.requests == []


def test_hook_output_stays_in_the_provider_log(service, caplog, monkeypatch):
    engine, client, _ = service
    monkeypatch.setenv("DIALBACK_TEST_PROVIDER_SECRET", SECRET)  # stands for OS_PASSWORD, the S3 keys...
    dump = [sys.executable, "-c", "import os, sys; print(os.environ['DIALBACK_TEST_PROVIDER_SECRET'])"]
    fail = [*dump[:2], dump[2] + "; sys.exit(4)"]
    stages = [{"name": "db", "servers": [{"name": "db", "group": "g1", "volume": "disk0"}], "hook": dump},
              {"name": "app", "servers": [{"name": "app", "group": "g1", "volume": "disk0"}], "hook": fail}]
    engine.submit(OperationSpec(id="plan-h", tenant="acme", kind="plan", stages=stages))  # the provider's hooks
    with caplog.at_level(logging.WARNING, logger="dialback.burst"):
        st = engine.drive("acme", "plan-h")
    assert st.status == "failed" and "exited with 4" in st.error and "reference" in st.error
    view = client.get("/v1/tenants/acme/operations/plan-h").text + client.get(
        "/v1/tenants/acme/operations/plan-h/events").text
    assert "HookRan" in view and SECRET not in view, "hook output reached the tenant"
    assert caplog.text.count(SECRET) == 2, "both hooks' output is in the provider's log"


def test_hook_output_in_an_older_event_log_is_not_served(service):
    engine, client, _ = service
    engine.submit(OperationSpec(id="fo-old", tenant="acme", kind="failover", group="g1", volume="disk0"))
    engine.events.append("acme", "fo-old", "ProvisioningStarted")
    engine.events.append("acme", "fo-old", "HookRan", stage="main", returncode=0, output=SECRET)  # pre-fix shape
    r = client.get("/v1/tenants/acme/operations/fo-old/events")
    assert r.status_code == 200 and "HookRan" in r.text and SECRET not in r.text


@pytest.mark.parametrize("url,allowed,ok", [
    ("http://127.0.0.1:7450", "127.0.0.1:7450", "http://127.0.0.1:7450"),
    ("http://127.0.0.1:7450/", "127.0.0.1:7450", "http://127.0.0.1:7450"),
    ("http://127.0.0.1:7451", "127.0.0.1:7450", None),
    ("http://TAP.example:80", "tap.example", "http://tap.example:80"),
    ("https://tap.example", "tap.example:443", "https://tap.example:443"),
    ("http://[::1]:7450", "[::1]:7450", "http://[::1]:7450"),
    ("http://127.0.0.1:7450?x=1", "127.0.0.1:7450", None),
    ("file:///etc/passwd", "127.0.0.1", None),
    ("http://127.0.0.1:7450", "", None),
])
def test_reverse_tap_urls(url, allowed, ok):
    from services.burst.errors import InvalidRequest
    from services.burst.reverse_tap import check_reverse_tap, parse_allowed

    if ok:
        assert check_reverse_tap(url, parse_allowed(allowed)) == ok
    else:
        with pytest.raises(InvalidRequest):
            check_reverse_tap(url, parse_allowed(allowed))
