"""Long fuzz run of the decoders that face the network (the suite runs the same properties briefly).

    PYTHONPATH=$PWD .venv/bin/python bench/fuzz.py [--examples 5000] [--targets frames,plan_body] [--seed N]

Targets and properties: tests/shared/fuzz_cases.py (every input decodes or
raises the codec's own error, within a small heap bound). Prints JSON: per
target the examples run, the seconds taken and, on a failure, the exception
and the shrunk failing input (hex, first 256 bytes); the exit status is 1 when
any target failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.shared.fuzz_cases import TARGETS


def run_target(name: str, examples: int, rng_seed: int | None) -> dict:
    strategy, check = TARGETS[name]
    seen = {"n": 0, "last": None}

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(value) -> None:
        seen["n"] += 1
        seen["last"] = value
        check(value)

    test = prop if rng_seed is None else seed(rng_seed)(prop)
    t0 = time.perf_counter()
    out: dict = {"target": name, "examples_requested": examples}
    try:
        test()
        out["ok"] = True
    except BaseException as err:  # noqa: BLE001 - the report says what went wrong, then we go on
        if isinstance(err, KeyboardInterrupt):
            raise
        value = seen["last"]
        out.update(ok=False, error=f"{type(err).__name__}: {err}"[:2000],
                   input_hex=value[:256].hex() if isinstance(value, (bytes, bytearray)) else repr(value)[:512])
    out["examples_run"] = seen["n"]  # includes shrinking attempts after a failure
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=5000, help="examples per target")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    ap.add_argument("--seed", type=int, default=None, help="fixed hypothesis seed (reproducible run)")
    args = ap.parse_args()
    names = [t for t in args.targets.split(",") if t]
    unknown = [t for t in names if t not in TARGETS]
    if unknown or args.examples < 1:
        ap.error(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}" if unknown
                 else "--examples must be >= 1")
    results = [run_target(n, args.examples, args.seed) for n in names]
    print(json.dumps({"bench": "fuzz", "python": platform.python_version(), "seed": args.seed,
                      "examples_per_target": args.examples, "ok": all(r["ok"] for r in results),
                      "results": results}, indent=2))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
