"""schemathesis on every running service as A's agent and operator, B's operator and no token (bench/securitylib/fuzz.py).

Bounded: up to 15 cases per operation and principal, two minutes in all. No 5xx
(schemathesis' not_a_server_error); no answer to B or to no token carries a marker of A.
"""

from __future__ import annotations

import json

import pytest

from bench.securitylib import fuzz

pytestmark = [pytest.mark.integration]


def test_schemathesis_finds_no_server_error_and_no_cross_tenant_data(world):
    rep = fuzz.run(world, max_examples=15, seconds=120)
    assert rep.operations >= 30, rep.per_service  # every service's operations were loaded
    assert rep.cases >= rep.operations * len(fuzz.FUZZ_PRINCIPALS), rep.per_service
    assert rep.findings == [], json.dumps(rep.findings, indent=1)
