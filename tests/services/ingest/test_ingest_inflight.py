"""In-flight body bytes are capped per tenant and in all: real uvicorn, real sockets, concurrent requests.

Slow agents are raw sockets that send the headers and part of a large body, then
stall: each holds what its Content-Length announced (or, chunked, what it sent).
Past a cap a body is answered 503 with Retry-After, and the client gets that
answer (ingest reads and drops the rest of the body instead of cutting it off).
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from deploy.local.process import free_port
from shared.auth import create_tenant
from shared.bodies import BATCHES_CONTENT_TYPE, max_body_bytes

from .ingest_helpers import BATCH, VOLUME_SIZE, batch

BIG = max_body_bytes(sealed=False)  # the largest unsealed multi-batch body
CAP = max_body_bytes(sealed=True)   # per tenant: one largest body; a second one does not fit


class Served:
    def __init__(self, app, tokens: dict[str, str]) -> None:
        self.app, self.tokens, self.port = app, tokens, free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "ingest did not start"
            time.sleep(0.02)
        self.http = httpx.Client(base_url=self.url, timeout=20)
        for t in tokens:
            r = self.http.put("/v1/groups/g1", headers=self.h(t), json={"volumes": [{"volume": "disk0",
                                                                                      "size": VOLUME_SIZE}]})
            assert r.status_code == 200, r.text

    def h(self, tenant: str, **extra) -> dict:
        return {"Authorization": f"Bearer {self.tokens[tenant]}", **extra}

    @property
    def inflight(self):
        return self.app.state.inflight

    def stall(self, tenant: str, length: int | None, sent: int = 1 << 16) -> socket.socket:
        """A body of ``length`` (None: chunked) of which ``sent`` bytes arrive, then nothing."""
        s = socket.create_connection(("127.0.0.1", self.port))
        framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        s.sendall((f"POST /v1/groups/g1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.tokens[tenant]}"
                   f"\r\nContent-Type: {BATCHES_CONTENT_TYPE}\r\n{framing}\r\n\r\n").encode())
        if length is None:
            s.sendall(f"{sent:x}\r\n".encode() + bytes(sent) + b"\r\n")
        else:
            s.sendall(bytes(sent))
        return s

    def post(self, tenant: str, body: bytes, ctype: str = BATCH) -> httpx.Response:
        return self.http.post("/v1/groups/g1/batches", content=body, headers=self.h(tenant, **{"Content-Type": ctype}))

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)


def wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def served(harness):
    tokens = {**harness.tenants.tokens, "initech": create_tenant(harness.tenants.path, "initech")}
    harness.settings = harness.settings.model_copy(update={
        "ingest_max_inflight_bytes_per_tenant": CAP, "ingest_max_inflight_bytes": 2 * CAP, "retry_after_s": 3})
    s = Served(harness.app(), tokens)
    yield s
    s.close()


def test_a_tenant_past_its_share_gets_503_with_retry_after_and_others_go_on(served):
    slow = served.stall("acme", BIG)
    try:
        wait(lambda: served.inflight.by_tenant.get("acme") == BIG, "the slow body's reservation")
        t0 = time.monotonic()
        r = served.post("acme", batch(1, 3))
        assert r.status_code == 503 and r.headers["retry-after"] == "3", r.text
        assert "retry later" in r.json()["detail"] and "acme" in r.json()["detail"]
        assert time.monotonic() - t0 < 5, "the answer came at once, not after a timeout"
        assert served.post("globex", batch(1, 3)).json() == {"acked_through": 3}, "another tenant is not held up"
        # a second slow body, from another tenant, fills ingest as a whole: a third tenant waits too
        slow2 = served.stall("globex", BIG)
        try:
            wait(lambda: served.inflight.total == 2 * BIG, "both reservations")
            r = served.post("initech", batch(1, 3))
            assert r.status_code == 503 and "all tenants" in r.json()["detail"] and "retry-after" in r.headers
        finally:
            slow2.close()
    finally:
        slow.close()
    wait(lambda: served.inflight.total == 0, "reservations released when the slow clients went away")
    assert served.post("acme", batch(1, 3)).json() == {"acked_through": 3}
    metrics = served.http.get("/metrics").text
    assert 'dialback_ingest_batches_total{outcome="rejected",reason="overloaded"} 2.0' in metrics


def test_a_chunked_body_counts_as_it_arrives(served):
    slow = served.stall("acme", None, sent=CAP - 4096)
    try:
        wait(lambda: served.inflight.by_tenant.get("acme") == CAP - 4096, "the chunks received so far")
        r = served.post("acme", batch(1, 3))  # 3 x 4 KiB records: past what is left of the share
        assert r.status_code == 503 and "retry-after" in r.headers
        assert served.inflight.by_tenant["acme"] == CAP - 4096, "a refused body reserves nothing"
    finally:
        slow.close()
    wait(lambda: served.inflight.total == 0, "release")


def test_many_concurrent_large_bodies_never_hold_more_than_the_cap(served):
    """16 concurrent full-size bodies from one tenant: at most one is held at a time, the rest get 503."""
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, served.inflight.total)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    body = bytes(BIG)  # well framed or not, it is refused or judged only after it was held
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: served.post("acme", body, BATCHES_CONTENT_TYPE).status_code, range(16)))
    done.set()
    watcher.join()
    assert set(codes) <= {400, 503} and 503 in codes, codes
    assert peak <= CAP, f"{peak} bytes held at once, cap {CAP}"
    assert served.inflight.total == 0


def test_a_declared_length_over_the_limit_is_refused_before_reading(served):
    s = socket.create_connection(("127.0.0.1", served.port))
    try:
        s.sendall((f"POST /v1/groups/g1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                   f"{served.tokens['acme']}\r\nContent-Type: {BATCHES_CONTENT_TYPE}\r\n"
                   f"Content-Length: {64 << 30}\r\n\r\n").encode())  # 64 GiB announced, nothing sent
        s.settimeout(10)
        head = s.recv(4096).decode(errors="replace")
    finally:
        s.close()
    assert head.startswith("HTTP/1.1 413"), head
    assert served.inflight.total == 0
