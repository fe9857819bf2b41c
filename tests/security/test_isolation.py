"""Tenant isolation, route by route, on the real services (bench/securitylib/probe.py).

Every route of every service's OpenAPI (and retention's web pages), as A's agent
and operator, B's agent and operator, no token, a garbage token and the provider's token, on A's real
resources and on random missing ones: no 5xx, nothing of A's in anyone else's
answer, a refusal on A's resource equal to the answer on a missing one, and A's
resources unchanged by every refused call.
"""

from __future__ import annotations

import json

import pytest

from bench.securitylib import principals
from bench.securitylib.probe import Probe, finish
from bench.securitylib.world import OPENAPI_SERVICES

pytestmark = [pytest.mark.integration]


def test_every_route_refuses_other_tenants_like_a_missing_resource(world):
    doc = finish(Probe(world, max_requests=5000, seconds=150).run())
    assert not doc["truncated"], "the probe ran out of budget before every route was probed"
    assert set(doc["per_service"]) == {*OPENAPI_SERVICES, "retention"}
    # Every route met every principal; refused ones twice (A's ids, random ids).
    assert doc["requests_sent"] >= doc["routes_probed"] * len(principals.PRINCIPALS)
    assert doc["findings"] == [], json.dumps(doc["findings"], indent=1)
