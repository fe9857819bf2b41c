"""Every route of a running service, from its own /openapi.json, and a request for it.

A request is filled from an id set: any path or query parameter, or JSON body
property, named like a key of the set (tenant, group, volume, export_id, op_id,
bookmark, name, ...) gets that value; tenant A's real ids or random ones of the
same form. Anything else gets the smallest value its schema accepts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import httpx

METHODS = ("get", "put", "post", "delete", "patch")

# Routes outside OpenAPI: the retention processor's faust web server (no OpenAPI of its own).
EXTRA_ROUTES: dict[str, list[tuple[str, str]]] = {
    "retention": [("GET", p) for p in ("/healthz", "/metrics", "/", "/router/", "/router/topics", "/table/",
                                       "/graph/", "/stats/", "/assignment/")],
}


# Bodies that reach past validation into the resource itself; "{key}" is the id set's value.
# Routes not named here get the smallest body their schema accepts (example()).
BODIES: dict[tuple[str, str, str], object] = {
    ("ingest", "PUT", "/v1/groups/{group}"): {"volumes": [{"volume": "{volume}", "size": 1 << 20}]},
    ("recovery", "POST", "/v1/groups/{group}/exports"): {"volume": "{volume}", "latest": True},
    ("recovery", "POST", "/v1/groups/{group}/recoveries"): {"volume": "{volume}", "at": {"bookmark": "{bookmark}"}},
    ("metering", "PUT", "/v1/tenants/{tenant}/licences/{feature}"): {"enabled": False, "group": "{group}"},
    ("burst", "POST", "/v1/operations"): {"id": "{op_id}", "tenant": "{tenant}", "kind": "failover",
                                          "group": "{group}", "volume": "{volume}"},
    ("burst", "POST", "/v1/tenants/{tenant}/operations/{op_id}/scale"): {"count": 2},
    ("burst", "POST", "/v1/tenants/{tenant}/operations/{op_id}/failback"): {
        "reverse_group": "{group}", "target": "/nonexistent/{volume}.img", "agent_url": "http://127.0.0.1:9"},
    ("analyzer", "POST", "/v1/analyses"): {"profiles": ["{name}"]},
}


def _fill(template, ids: dict[str, str]):
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, ids) for v in template]
    return template


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str  # template, e.g. /v1/groups/{group}/points
    params: tuple = ()  # OpenAPI parameter objects (resolved)
    body_schema: dict | None = None
    spec: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.service} {self.method} {self.path}"


@dataclass
class Request:
    method: str
    url: str
    params: dict
    json_body: object | None
    content: bytes | None

    def text(self) -> str:
        """Everything the caller put into the request (an echo of it is not a leak)."""
        return self.url + json.dumps(self.params) + json.dumps(self.json_body) + (self.content or b"").decode(
            "latin-1")


def random_ids(like: dict[str, str]) -> dict[str, str]:
    """Fresh values of the same form as ``like`` (a letter prefix and hex); enum-like values kept."""
    out = {}
    for k, v in like.items():
        head = v.rstrip("0123456789abcdef")
        out[k] = v if len(head) == len(v) else head + secrets.token_hex(max(2, (len(v) - len(head)) // 2))
    return out


def routes(service: str, base_url: str, client: httpx.Client) -> list[Route]:
    spec = client.get(f"{base_url}/openapi.json").raise_for_status().json()
    out = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = tuple(_resolve(spec, p) for p in item.get("parameters", []) + op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            out.append(Route(service, method.upper(), path, params, _resolve(spec, body) if body else None, spec))
    return out + [Route(service, "GET", "/openapi.json")] + extra_routes(service)


def extra_routes(service: str) -> list[Route]:
    return [Route(service, m, p) for m, p in EXTRA_ROUTES.get(service, [])]


def build(route: Route, base_url: str, ids: dict[str, str]) -> Request:
    path, query = route.path, {}
    for p in route.params:
        name, where, schema = p["name"], p.get("in"), _resolve(route.spec, p.get("schema", {}))
        if name in ids:
            value = ids[name]
        elif p.get("required"):
            value = example(route.spec, schema, ids)
        else:
            continue
        if where == "path":
            path = path.replace("{" + name + "}", str(value))
        elif where == "query":
            query[name] = value
    key = (route.service, route.method, route.path)
    if key in BODIES:
        body = _fill(BODIES[key], ids)
    else:
        body = example(route.spec, route.body_schema, ids) if route.body_schema else None
    content = b"" if body is None and route.method in ("PUT", "POST") else None
    return Request(route.method, base_url + path, query, body, content)


def example(spec: dict, schema: dict | None, ids: dict[str, str], name: str | None = None):
    """The smallest value ``schema`` accepts, with properties named like an id taken from ``ids``."""
    schema = _resolve(spec, schema or {})
    if name in ids:
        return ids[name]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(spec, s).get("type") != "null"] or schema[key]
            return example(spec, options[0], ids, name)
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example(spec, v, ids, k) for k, v in props.items() if k in schema.get("required", []) or k in ids}
    if kind == "array":
        return [example(spec, schema.get("items", {}), ids)] * max(1, schema.get("minItems", 0))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    return "x" * max(1, schema.get("minLength", 1))


def _resolve(spec: dict, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj
