"""`dialback stack up` turns encryption at rest ON: its env names a 0600 master key, made once."""

from __future__ import annotations

import stat

from deploy.local.stack import Stack
from shared.crypto.keyring import load_master_key


def test_stack_env_creates_master_key_once(tmp_path):
    stack = Stack(tmp_path / "home", tmp_path / "cache")
    env = stack.env()
    master = tmp_path / "home" / "master.key"
    assert env["DIALBACK_MASTER_KEY_FILE"] == str(master)
    assert env["DIALBACK_KEYRING_FILE"] == str(tmp_path / "home" / "keyring.json")
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    key = load_master_key(master)
    assert len(key) == 32
    assert load_master_key(stack.env()["DIALBACK_MASTER_KEY_FILE"]) == key  # never regenerated
