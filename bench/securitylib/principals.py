"""Who may ask, and what each must get: two tables, so new credential kinds are new rows.

``PRINCIPALS``: name -> how to get its Authorization header from the world.
``ROUTES``: (service, method, path pattern) -> route class, first match wins.
``EXPECT``: (route class, principal) -> ``ALLOW`` (its own or a provider's business:
only "no 5xx" is checked) or ``Refuse(statuses)`` (the answer must be one of
``statuses``, equal in status and body shape to the answer for a random missing
resource, leak none of tenant A's markers, and change nothing of A's).

When scoped credentials land (an agent credential that only ships writes, an
operator credential that lists/recovers/exports, the provider's), add rows:
a principal ``agent_a`` in PRINCIPALS, a route class ``operator`` in ROUTES, and
e.g. ``("operator", "agent_a"): Refuse({401, 403, 404})`` in EXPECT.
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


# name -> world -> headers. The world has .tokens {"a", "b", "admin", "garbage"} (see world.py).
PRINCIPALS: dict[str, Callable[[object], dict[str, str]]] = {
    "tenant_a": lambda w: _bearer(w.tokens["a"]),
    "tenant_b": lambda w: _bearer(w.tokens["b"]),
    "none": lambda w: {},
    "garbage": lambda w: _bearer(w.tokens["garbage"]),
    "admin": lambda w: _bearer(w.tokens["admin"]),
    # "agent_a": lambda w: _bearer(w.tokens["agent_a"]),      # when scoped credentials land
    # "operator_a": lambda w: _bearer(w.tokens["operator_a"]),
}

# Principals that may see tenant A's data: a marker of A in their answers is not a leak.
OWNERS = {"tenant_a", "admin"}

# (service, method regex, path regex, class); first match wins.
ROUTES: list[tuple[str, str, str, str]] = [
    ("*", ".*", r"^/(healthz|metrics|openapi\.json|docs|redoc)$", "public"),
    ("retention", "GET", r".*", "public"),                   # faust's web server: no credentials at all
    ("metering", "GET", r"^/v1/usage$", "provider"),          # the view across tenants
    ("burst", "GET", r"^/v1/operations$", "provider"),
    ("analyzer", ".*", r".*", "provider"),                    # one token, the provider's (no tenants yet)
    # ("ingest", ".*", r".*", "agent"),                       # when scoped credentials land
    ("*", ".*", r".*", "tenant"),                             # a tenant's own data, by path or by token
]

ANON = Refuse({401})
EXPECT: dict[tuple[str, str], object] = {
    ("public", "tenant_a"): ALLOW, ("public", "tenant_b"): ALLOW, ("public", "none"): ALLOW,
    ("public", "garbage"): ALLOW, ("public", "admin"): ALLOW,
    ("tenant", "tenant_a"): ALLOW,
    # B may own a group of the same name (groups are per tenant): any status, but the same as for a missing one.
    ("tenant", "tenant_b"): Refuse(),
    ("tenant", "none"): ANON, ("tenant", "garbage"): ANON,
    ("tenant", "admin"): ALLOW,  # metering and burst: the provider acts on every tenant; elsewhere 401
    ("provider", "tenant_a"): Refuse({401, 403}), ("provider", "tenant_b"): Refuse({401, 403}),
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
