"""Who may ask, and what each must get: two tables, so new credential kinds are new rows.

``PRINCIPALS``: name -> how to get its Authorization header from the world.
``ROUTES``: (service, method, path pattern) -> route class, first match wins.
``EXPECT``: (route class, principal) -> ``ALLOW`` (its own or a provider's business:
only "no 5xx" is checked) or ``Refuse(statuses)`` (the answer must be one of
``statuses``, equal in status and body shape to the answer for a random missing
resource, leak none of tenant A's markers, and change nothing of A's).

The credentials are scoped (shared/auth.py, docs/credentials.md): an agent's
(``ingest``) ships writes, an operator's (``operate``) lists, recovers, exports,
bursts, reads usage and its analyzer profiles, the provider's does everything.
A credential without the scope a route needs gets 403 whatever it names, A's
resource or a missing one, another tenant or its own: the scope is checked
before any resource is looked at (shared.bearer.Principal.refusal), so the 403
is the missing-resource answer. An operator credential naming another tenant's
resource gets that tenant's "does not exist" 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Refuse:
    statuses: frozenset[int] | None  # None: any status, as long as it equals the missing-resource answer

    def __init__(self, statuses=None) -> None:
        object.__setattr__(self, "statuses", frozenset(statuses) if statuses is not None else None)


ALLOW = "allow"


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _token(name: str) -> Callable[[object], dict[str, str]]:
    return lambda w: _bearer(w.tokens[name])


# name -> world -> headers. The world's .tokens has one entry per name but "none" (see world.py).
PRINCIPALS: dict[str, Callable[[object], dict[str, str]]] = {
    "agent_a": _token("agent_a"),        # A's agent credential (scope ingest), from its credentials file
    "operator_a": _token("operator_a"),  # A's operator credential (scope operate)
    "agent_b": _token("agent_b"),
    "operator_b": _token("operator_b"),
    "none": lambda w: {},
    "garbage": _token("garbage"),
    "admin": _token("admin"),            # the provider: every service's DIALBACK_*_ADMIN_TOKEN / analyzer token
}

# Whose namespace a principal writes in: what B's agent registered, B's operator is shown as B's own.
TENANT_OF = {"agent_a": "a", "operator_a": "a", "agent_b": "b", "operator_b": "b"}


def tenant_of(who: str) -> str:
    return TENANT_OF.get(who, who)


# Principals that may see tenant A's data: a marker of A in their answers is not a leak.
OWNERS = {"agent_a", "operator_a", "admin"}

# (service, method regex, path regex, class); first match wins.
ROUTES: list[tuple[str, str, str, str]] = [
    ("*", ".*", r"^/(healthz|metrics|openapi\.json|docs|redoc)$", "public"),
    ("retention", "GET", r".*", "public"),                   # faust's web server: no credentials at all
    ("metering", "GET", r"^/v1/usage$", "provider"),          # the view across tenants
    ("metering", "PUT", r"/licences/", "provider"),           # switching a licence (off: purge)
    ("metering", ".*", r"/credentials", "provider"),          # a tenant's credentials
    ("burst", "GET", r"^/v1/operations$", "provider"),        # every tenant's operations
    ("ingest", ".*", r".*", "agent"),                         # register groups, ship batches
    ("*", ".*", r".*", "tenant"),                             # the operator's: recovery, burst, metering, analyzer
]

ANON = Refuse({401})
NO_SCOPE = Refuse({403})  # the same 403 on A's resource and on a missing one (scope before lookup)
EXPECT: dict[tuple[str, str], object] = {
    **{("public", who): ALLOW for who in PRINCIPALS},
    ("agent", "agent_a"): ALLOW,
    # B's agent may register a group of A's group's name (groups are per tenant): any status, as for a missing one.
    ("agent", "agent_b"): Refuse(),
    ("agent", "operator_a"): NO_SCOPE, ("agent", "operator_b"): NO_SCOPE,
    ("agent", "none"): ANON, ("agent", "garbage"): ANON,
    ("agent", "admin"): Refuse({401, 403}),  # the provider ships nothing (ingest knows no admin token: 401)
    ("tenant", "operator_a"): ALLOW,
    # B's operator may own a profile or group of the same name: any status, but the same as for a missing one
    # (another tenant named in the path or body: its 404, "does not exist").
    ("tenant", "operator_b"): Refuse(),
    ("tenant", "agent_a"): NO_SCOPE, ("tenant", "agent_b"): NO_SCOPE,
    ("tenant", "none"): ANON, ("tenant", "garbage"): ANON,
    ("tenant", "admin"): ALLOW,  # metering, burst, analyzer (?tenant=): the provider acts on every tenant
    **{("provider", who): NO_SCOPE for who in ("agent_a", "operator_a", "agent_b", "operator_b")},
    ("provider", "none"): ANON, ("provider", "garbage"): ANON,
    ("provider", "admin"): ALLOW,
}


def route_class(service: str, method: str, path: str) -> str:
    for svc, m, p, cls in ROUTES:
        if svc in ("*", service) and re.fullmatch(m, method) and re.search(p, path):
            return cls
    raise LookupError(f"no route class for {service} {method} {path}: add a row to ROUTES")


def expectation(cls: str, principal: str):
    try:
        return EXPECT[(cls, principal)]
    except KeyError:
        raise LookupError(f"no expectation for route class {cls!r} and principal {principal!r}: "
                          "add a row to EXPECT") from None
