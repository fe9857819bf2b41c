"""Fuzzing ingest's HTTP body endpoint: any body is a 4xx with a JSON error, never a 500, nothing produced.

Bodies are random bytes, mutations of valid batches and bodies, hand-framed
records with arbitrary fields (bombs included) and unopenable sealed bodies,
posted under every content type by a tenant without and one with a transport
key, each within a small heap bound. Every valid encoding drawn starts at sequence >= 2, so none is acceptable
to the freshly registered group: whatever ingest says, it must refuse.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .ingest_helpers import register

from services.ingest.api.routes.batches import CONTENT_TYPES
from services.ingest.transport import TransportKeys
from shared.crypto.keyring import Keyring, transport_entry
from shared.crypto.transport import new_key
from shared.frames import MAX_RECORD_BYTES
from shared.tenancy import control_topic, writes_topic
from tests.shared.bombs import bomb_batch, peak_growth
from tests.shared.fuzz_cases import HEAP_BOUND, VOLUMES, batch_inputs_from, body_inputs_from, sealed_inputs

EXAMPLES = 150


@pytest.fixture
def fuzz_client(harness, tmp_path):
    ring = Keyring(new_key(), tmp_path / "keyring.json")
    ring.data_key(transport_entry("globex"))  # globex must seal; acme must not
    with TestClient(harness.app(keys=TransportKeys(ring))) as c:
        for tenant in ("acme", "globex"):
            register(c, harness.tenants, tenant, "g1", volumes=tuple(VOLUMES.items()))
        yield c


def _state(harness) -> tuple:
    topics = harness.broker.topics
    return tuple(tuple(m.value for m in topics.get(t(n), [])) for n in ("acme", "globex")
                 for t in (writes_topic, control_topic))


def test_any_body_is_a_4xx_json_error_and_produces_nothing(fuzz_client, harness):
    before = _state(harness)
    assert not any(harness.broker.topics.get(writes_topic(n)) for n in ("acme", "globex"))
    body = st.one_of(batch_inputs_from(min_seq=2), body_inputs_from(min_seq=2), sealed_inputs)
    ctype = st.sampled_from([*CONTENT_TYPES, "text/plain"])

    def refused(tenant: str, content_type: str, data: bytes) -> None:
        with peak_growth() as peak:
            r = fuzz_client.post("/v1/groups/g1/batches", content=data,
                                 headers=harness.tenants.headers(tenant, **{"Content-Type": content_type}))
        assert peak[0] < HEAP_BOUND, f"a {len(data)}-byte body grew ingest's heap by {peak[0] >> 20} MiB"
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        detail = json.loads(r.text)["detail"]
        assert isinstance(detail, str) and detail

    for data in (bomb_batch(seq=2, declared=MAX_RECORD_BYTES), bomb_batch(seq=2, declared=256 << 20)):
        refused("acme", CONTENT_TYPES[0], data)  # the bombs, whatever hypothesis draws

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(st.sampled_from(["acme", "globex"]), ctype, body)
    def run(tenant: str, content_type: str, data: bytes) -> None:
        refused(tenant, content_type, data)

    run()
    assert _state(harness) == before
    for tenant in ("acme", "globex"):
        got = fuzz_client.get("/v1/groups/g1", headers=harness.tenants.headers(tenant))
        assert got.json()["acked_through"] == 0
