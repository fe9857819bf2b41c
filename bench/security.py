"""Check Dialback the way an attacker would: every route of every service, as every principal.

    .venv/bin/python -m bench.security                       # throwaway Kafka + MinIO, ~2-3 min
    .venv/bin/python -m bench.security --stack               # the running `dialback stack up`
    .venv/bin/python -m bench.security --fuzz-examples 0     # the isolation probe only

Starts the real services (deploy/local/pipeline.py; burst on the in-memory cloud),
creates tenants A and B, seeds A (a group shipped through ingest by a real agent,
a bookmark, an export, a failover, a licence, a profile), then:

1. the isolation probe (bench/securitylib/probe.py): each route of each service's
   /openapi.json (and retention's web pages) as A's agent and operator, B's agent
   and operator, no token, a garbage token and the provider's admin token, on A's
   real ids and on random ones (bench/securitylib/principals.py);
2. schemathesis (bench/securitylib/fuzz.py) on each service as A's agent and operator,
   B's operator and no token.

Prints JSON: routes_probed, requests_sent, server_errors (goal 0), cross_tenant_leaks
(goal 0), unequal_refusals (goal 0), per-service counts and every finding. Exits 1
on any finding. Bounded by --max-requests and --seconds (probe) and --fuzz-seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-requests", type=int, default=20000, help="isolation probe: at most this many requests")
    ap.add_argument("--seconds", type=float, default=300.0, help="isolation probe: at most this long")
    ap.add_argument("--fuzz-examples", type=int, default=20, help="schemathesis cases per operation and principal "
                                                                  "(0: no schemathesis)")
    ap.add_argument("--fuzz-seconds", type=float, default=120.0, help="schemathesis: at most this long")
    ap.add_argument("--stack", action="store_true", help="use the running `dialback stack up` (default: start a "
                                                          "throwaway Kafka and MinIO)")
    args = ap.parse_args(argv)
    args.seconds, args.fuzz_seconds = min(args.seconds, 1800.0), min(args.fuzz_seconds, 1800.0)  # bounded load

    from bench.securitylib import fuzz
    from bench.securitylib.probe import Probe, finish
    from bench.securitylib.world import start_world

    servers, work = [], Path(tempfile.mkdtemp(prefix="dialback-security-"))
    try:
        env = _stack_env(args.stack, servers)
        world = start_world(env, work / "home", log=lambda m: print(m, file=sys.stderr, flush=True))
        try:
            iso = finish(Probe(world, args.max_requests, args.seconds).run())
            fz = fuzz.run(world, args.fuzz_examples, args.fuzz_seconds).to_dict() if args.fuzz_examples else None
        finally:
            world.stop()
    finally:
        from tests.servers import cleanup

        for s in servers:
            cleanup(s)
        shutil.rmtree(work, ignore_errors=True)
    out = summary(iso, fz)
    print(json.dumps(out, indent=2))
    return 0 if not out["findings"] else 1


def summary(iso: dict, fz: dict | None) -> dict:
    fz = fz or {"cases": 0, "server_errors": 0, "cross_tenant_leaks": 0, "findings": [], "operations": 0}
    return {
        "bench": "security",
        "routes_probed": iso["routes_probed"],
        "requests_sent": iso["requests_sent"] + fz["cases"],
        "server_errors": iso["server_errors"] + fz["server_errors"],
        "cross_tenant_leaks": iso["cross_tenant_leaks"] + fz["cross_tenant_leaks"],
        "unequal_refusals": iso["unequal_refusals"],
        "unexpected_statuses": iso["unexpected_statuses"],
        "changed_by_refused_calls": iso["changed_by_refused_calls"],
        "isolation": iso,
        "schemathesis": fz,
        "findings": [*iso["findings"], *fz["findings"]],
        "known_findings": iso["known_findings"],
    }


def _stack_env(use_stack: bool, servers: list) -> dict[str, str]:
    if use_stack:
        from deploy.local.stack import Stack

        return Stack.default().env()
    from tests.servers import start_kafka, start_minio

    servers.append(kafka := start_kafka())
    servers.append(minio := start_minio())
    return {"DIALBACK_KAFKA_BOOTSTRAP": kafka.bootstrap, "DIALBACK_S3_ENDPOINT": minio.endpoint,
            "DIALBACK_S3_ACCESS_KEY": minio.access_key, "DIALBACK_S3_SECRET_KEY": minio.secret_key}


if __name__ == "__main__":
    sys.exit(main())
