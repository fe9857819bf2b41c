"""schemathesis against every running service's OpenAPI, as several principals, bounded.

For each operation and principal, hypothesis draws up to ``max_examples`` cases
(positive and negative, half of them with the path parameters pinned to tenant
A's real ids, so B's tokens, A's agent and no token really meet A's resources). Checks:
schemathesis' ``not_a_server_error`` on every answer; for principals outside
``OWNERS``, no answer contains a marker of A that the request did not carry (nor
that the same principal stored in its own namespace by an accepted write, see
World.stored); no answer contains a token. Failures are collected, not raised.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from bench.securitylib import principals
from bench.securitylib.world import OPENAPI_SERVICES, World

FUZZ_PRINCIPALS = ("agent_a", "operator_a", "operator_b", "none")


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    server_errors: int = 0
    cross_tenant_leaks: int = 0
    truncated: bool = False
    seconds: float = 0.0
    per_service: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)

    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return asdict(self)


def run(world: World, max_examples: int = 20, seconds: float = 120.0, who: tuple[str, ...] = FUZZ_PRINCIPALS,
        services: tuple[str, ...] = OPENAPI_SERVICES) -> FuzzReport:
    rep, t0 = FuzzReport(), time.monotonic()
    deadline = t0 + seconds
    for svc in services:
        url = world.urls[svc]
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        counts = rep.per_service.setdefault(svc, {"operations": 0, "cases": 0, "server_errors": 0, "leaks": 0})
        for result in schema.get_all_operations():
            op = result.ok()
            rep.operations += 1
            counts["operations"] += 1
            for name in who:
                if time.monotonic() > deadline:
                    rep.truncated = True
                    break
                _fuzz(op, url, name, world, max_examples, deadline, rep, counts)
    rep.seconds = round(time.monotonic() - t0, 2)
    return rep


def _fuzz(op, url, who, world, max_examples, deadline, rep, counts) -> None:
    headers = principals.PRINCIPALS[who](world)
    names = {p.name for p in op.path_parameters}
    pinned = {k: v for k, v in world.ids.items() if k in names}
    strategies = [op.as_strategy(GenerationMode.POSITIVE, headers=headers),
                  op.as_strategy(GenerationMode.NEGATIVE, headers=headers)]
    if pinned:
        strategies.append(op.as_strategy(GenerationMode.POSITIVE, headers=headers, path_parameters=pinned))
    owner = who in principals.OWNERS

    @given(case=st.one_of(strategies))
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate))
    def one(case) -> None:
        if time.monotonic() > deadline:
            return
        case.headers = {**(case.headers or {}), **headers} if headers else {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        rep.cases += 1
        counts["cases"] += 1
        label = f"{op.method.upper()} {op.path}"
        try:
            resp = case.call(base_url=url, timeout=60)
        except Exception as err:  # noqa: BLE001 - no answer is a finding, like a 5xx
            _found(rep, counts, "server_error", label, who, None, f"no answer: {err!r}", case)
            return
        try:
            case.validate_response(resp, checks=[not_a_server_error])
        except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - schemathesis raises a FailureGroup
            _found(rep, counts, "server_error", label, who, resp.status_code, f"{err}: {resp.text[:300]}", case)
        asked = json.dumps([case.formatted_path, case.query, case.body], default=str)
        for name in world.leaked(who, owner, asked, resp.text):
            _found(rep, counts, "leak", label, who, resp.status_code, f"answer contains {name}", case)
        world.stored(who, case.method, resp.status_code < 300, asked)

    one()


def _found(rep, counts, kind, label, who, status, detail, case) -> None:
    if kind == "server_error":
        rep.server_errors += 1
        counts["server_errors"] += 1
    else:
        rep.cross_tenant_leaks += 1
        counts["leaks"] += 1
    if len(rep.findings) < 200:
        rep.findings.append({"kind": kind, "route": label, "principal": who, "status": status, "detail": detail[:600],
                             "path": case.formatted_path, "query": case.query,
                             "body": json.dumps(case.body, default=str)[:300]})
