"""`python -m deploy.local.openstack up|down|status [--state-dir D] [--cache-dir D]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from deploy.local.openstack.provision import start, status, stop
from shared.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.local.openstack")
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--state-dir", type=Path, default=None, help="default: $DIALBACK_HOME")
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: $DIALBACK_CACHE")
    a = ap.parse_args(argv)
    if a.command == "up":
        t0, timings = time.monotonic(), {}
        try:
            ep = start(a.state_dir, a.cache_dir, timings)
        except (ConfigError, TimeoutError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(json.dumps({"endpoints": ep.env(), "seconds": round(time.monotonic() - t0, 1),
                          "timings": {k: round(v, 1) for k, v in timings.items()}}, indent=2))
    elif a.command == "down":
        print("stopped:", ", ".join(stop(a.state_dir, a.cache_dir)) or "nothing was running")
    else:
        st = status(a.state_dir, a.cache_dir)
        print(json.dumps(st, indent=2))
        return 0 if all(s["running"] and s.get("answers", True) for s in st.values()) else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
