"""Fixtures: a metering process (python -m services.metering) on the session's real Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from deploy.local.process import free_port
from shared.auth import OPERATE, create_tenant
from shared.bus.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def metering_factory(kafka_bootstrap, tmp_path):
    """``factory(tenants, **env)``: isolated topics, tenants with tokens; killed at the end."""
    made = []

    def factory(tenants, extra_env: dict | None = None):
        sfx = uuid.uuid4().hex[:8]
        tenants_file = tmp_path / f"tenants-{sfx}.json"
        tokens = {t: create_tenant(tenants_file, t, scopes=[OPERATE]) for t in tenants}
        env = {
            **os.environ,
            "DIALBACK_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "DIALBACK_TENANTS_FILE": str(tenants_file),
            "DIALBACK_USAGE_TOPIC": f"dialback.usage.{sfx}",
            "DIALBACK_BILLING_TOPIC": f"dialback.billing.{sfx}",
            "DIALBACK_DLQ_TOPIC": f"dialback.usage.dlq.{sfx}",
            "DIALBACK_METERING_STATE_TOPIC": f"dialback.metering.state.{sfx}",
            "DIALBACK_LICENSING_TOPIC": f"dialback.licensing.{sfx}",
            "DIALBACK_METERING_GROUP": f"metering-{sfx}",
            "DIALBACK_METERING_TRANSACTIONAL_ID": f"metering-{sfx}",
            "DIALBACK_METERING_WALL_CLOCK": "false",  # event time alone drives hours: deterministic
            "DIALBACK_METERING_LATENESS_S": "300",
            "DIALBACK_METERING_HORIZON_S": str(24 * 3600),
            "DIALBACK_METERING_BATCH_MAX": "200",  # small transactions, so a kill lands between and inside them
            "DIALBACK_METERING_PURGE": "false",
            "DIALBACK_METERING_PORT": str(free_port()),
            "DIALBACK_METERING_ADMIN_TOKEN": "admin-" + sfx,
            "DIALBACK_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        # the usage topic has 3 partitions: order across them is not kept, as in production
        ensure_topics(kafka_bootstrap, [env["DIALBACK_USAGE_TOPIC"]], partitions=3)
        m = Metering(env, tokens, tmp_path / sfx)
        m.tmp.mkdir()
        made.append(m)
        return m

    yield factory
    for m in made:
        m.kill()


class Metering:
    def __init__(self, env, tokens, tmp):
        self.env, self.tokens, self.tmp = env, tokens, tmp
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{env['DIALBACK_METERING_PORT']}"
        self.starts = 0

    def start(self, **extra_env):
        self.starts += 1
        log = open(self.tmp / f"metering-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "services.metering"], env={**self.env, **extra_env},
                                     cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / f"metering-{self.starts}.log").read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("metering did not answer /healthz within 60s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # no shutdown hooks: a crash, not a stop
            self.proc.wait(10)

    def get(self, path, token, **params):
        return httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def admin(self):
        return self.env["DIALBACK_METERING_ADMIN_TOKEN"]



    def put(self, path, token, body):
        return httpx.put(self.url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
