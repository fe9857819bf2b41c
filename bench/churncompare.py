"""`bench.churn --compare`: today's settings and the secure path, same machine, same invocation.

1. baseline: the pre-security code (``--baseline-commit``, default b9af412: plain HTTP agent→ingest,
   Kafka records in plaintext) checked out with ``git worktree add`` into a temporary directory and
   run from there (its own ``bench.churn``, same venv, PYTHONPATH at that checkout);
2. secure: this checkout's ``bench.churn --tls``: the agent ships over HTTPS checking the pipeline's
   CA, and ingest seals every record in Kafka under the tenant's bus key (it does whenever a keyring
   is configured, which the pipeline always does).

Both at the same ``--rate``/``--seconds``/``--disk-mib``/``--block-kib``, one after the other (each
run purges its topics and objects and waits for Kafka/MinIO to finish deleting before returning).
Provider-side CPU is ingest + Kafka + retention + MinIO (the agent runs on the customer's server;
recovery only polls for the bench). The secure run passes when its provider CPU per MB is at most
1.1× the baseline's and it held the offered rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROVIDER = ("ingest", "kafka", "retention", "minio")
REPO = Path(__file__).resolve().parent.parent


def _run(cwd: Path, args, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "bench.churn", "--rate", str(args.rate), "--seconds", str(args.seconds),
           "--disk-mib", str(args.disk_mib), "--block-kib", str(args.block_kib), *extra]
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    print(f"churn --compare: {' '.join(cmd[1:])} in {cwd}", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"churn --compare: the run in {cwd} failed (exit {out.returncode}); its output is above")
    start = out.stdout.find("{")
    if start < 0:
        raise SystemExit(f"churn --compare: the run in {cwd} printed no JSON:\n{out.stdout[-2000:]}")
    return json.JSONDecoder().raw_decode(out.stdout[start:])[0]


def _figures(r: dict, rate: float) -> dict:
    ms = r["cpu"]["ms_per_MB"]
    provider = sum(ms.get(n, 0.0) for n in PROVIDER)
    second_half = r.get("recoverable_MBps_second_half") or 0.0
    held = bool(r["all_recoverable"]) and (rate <= 0 or (r["tap_MBps"] >= 0.95 * rate and second_half >= 0.95 * rate))
    return {"provider_cpu_s_per_MB": round(provider / 1000, 5), "provider_ms_per_MB": round(provider, 2),
            "provider_ms_per_MB_by_process": {n: ms.get(n) for n in PROVIDER},
            "sustained_end_to_end_MBps": r["sustained_end_to_end_MBps"],
            "recoverable_MBps_second_half": second_half, "tap_MBps": r["tap_MBps"],
            "offered_rate_held": held}


def compare(args) -> dict:
    base_dir = Path(tempfile.mkdtemp(prefix="dialback-churn-base-")) / "src"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base_dir), args.baseline_commit],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        baseline = _run(base_dir, args, [])
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_dir)], check=False)
    secure = _run(REPO, args, ["--tls"])
    b, s = _figures(baseline, args.rate), _figures(secure, args.rate)

    def ratio(key: str) -> float | None:
        return round(s[key] / b[key], 3) if b[key] and s[key] is not None else None

    cpu_ratio = ratio("provider_ms_per_MB")
    return {
        "bench": "churn-compare", "offered_MBps": args.rate or "unthrottled", "seconds": args.seconds,
        "baseline": {"what": f"commit {args.baseline_commit}: plain HTTP agent→ingest, plaintext Kafka records",
                     **b, "run": baseline},
        "secure": {"what": "this checkout: HTTPS agent→ingest (CA checked), records sealed in Kafka under the bus key",
                   **s, "run": secure},
        "ratios": {"provider_cpu_per_MB": cpu_ratio,
                   "sustained_end_to_end_MBps": ratio("sustained_end_to_end_MBps"),
                   "recoverable_MBps_second_half": ratio("recoverable_MBps_second_half")},
        "targets": {"provider_cpu_per_MB_ratio_max": 1.1, "offered_rate_held": True},
        "pass": cpu_ratio is not None and cpu_ratio <= 1.1 and s["offered_rate_held"],
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
    }
