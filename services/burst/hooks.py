"""Run a recovery-plan hook: a command with the operation's servers in its environment."""

from __future__ import annotations

import json
import os
import subprocess

from services.burst.errors import ProvisionFailed


def run_hook(argv: list[str], servers: dict, op_id: str, stage: str, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "DIALBACK_OP_ID": op_id, "DIALBACK_STAGE": stage,
           "DIALBACK_SERVERS": json.dumps(servers, sort_keys=True)}
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as err:
        raise ProvisionFailed(f"hook {argv[0]!r} of stage {stage!r} not found; give an absolute path") from err
    except subprocess.TimeoutExpired as err:
        raise ProvisionFailed(f"hook {argv[0]!r} of stage {stage!r} ran past {timeout:.0f}s") from err
    return r.returncode, (r.stdout + r.stderr)[-2000:]
