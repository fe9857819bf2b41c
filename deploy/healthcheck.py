"""Container health probe (deploy/compose.yaml): ``python -m deploy.healthcheck http|https PORT``.

GETs /healthz on this container's own loopback; exit 0 on 200. Over https the certificate is
not verified: it names the host's public name, not 127.0.0.1, and the probe sends no credential
and only asks "does the process answer?". Agents and clients always verify (shared/tls.py).
"""

from __future__ import annotations

import ssl
import sys
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("http", "https") or not argv[1].isdigit():
        print("usage: python -m deploy.healthcheck http|https PORT", file=sys.stderr)
        return 2
    scheme, port = argv
    ctx = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323 - see docstring
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/healthz", timeout=4, context=ctx) as r:
            return 0 if r.status == 200 else 1
    except OSError as err:
        print(f"{scheme}://127.0.0.1:{port}/healthz: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
