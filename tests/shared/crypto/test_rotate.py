"""Master key rotation of a key file (`dialback keys rotate-master`), keyring.find and crash recovery."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from shared.crypto.keyring import (
    Keyring, KeyringError, ensure_master_key, load_master_key, transport_entry, write_master_key,
)
from shared.crypto.rotate import finish_pending, pending_path, rotate_master_file


def _ring(tmp_path) -> tuple:
    master = ensure_master_key(tmp_path)
    ring_path = tmp_path / "keyring.json"
    ring = Keyring(load_master_key(master), ring_path)
    return master, ring_path, ring


def test_ensure_master_key_is_0600_and_kept(tmp_path):
    master = ensure_master_key(tmp_path)
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    before = master.read_bytes()
    assert ensure_master_key(tmp_path).read_bytes() == before


def test_find_never_creates_and_sees_entries_added_elsewhere(tmp_path):
    master, ring_path, ring = _ring(tmp_path)
    reader = Keyring(load_master_key(master), ring_path)
    assert reader.find(transport_entry("acme")) is None
    key = ring.data_key(transport_entry("acme"))  # another process adds it
    assert reader.find(transport_entry("acme")) == key
    assert reader.find(transport_entry("globex")) is None


def test_rotate_master_file_rewraps_every_key(tmp_path):
    master, ring_path, ring = _ring(tmp_path)
    keys = {n: ring.data_key(n) for n in ("dialback-acme", transport_entry("acme"))}
    old = load_master_key(master)
    assert rotate_master_file(master, ring_path) == 2
    assert load_master_key(master) != old
    assert stat.S_IMODE(master.stat().st_mode) == 0o600
    fresh = Keyring(load_master_key(master), ring_path)
    assert {n: fresh.find(n) for n in keys} == keys
    with pytest.raises(KeyringError):
        Keyring(old, ring_path).verify()
    assert not pending_path(master).exists()


def test_crash_after_rewrap_is_finished(tmp_path):
    master, ring_path, ring = _ring(tmp_path)
    key = ring.data_key("dialback-acme")
    new = pending_path(master)
    write_master_key(new)
    ring.rotate_master(load_master_key(new))  # crash before the rename
    assert "finished" in finish_pending(master, ring_path)
    assert Keyring(load_master_key(master), ring_path).find("dialback-acme") == key


def test_crash_before_rewrap_is_discarded(tmp_path):
    master, ring_path, ring = _ring(tmp_path)
    key = ring.data_key("dialback-acme")
    write_master_key(pending_path(master))
    assert "discarded" in finish_pending(master, ring_path)
    assert not pending_path(master).exists()
    assert Keyring(load_master_key(master), ring_path).find("dialback-acme") == key


def test_cli_rotate_master(tmp_path, monkeypatch):
    from cli.main import app

    master, ring_path, ring = _ring(tmp_path)
    key = ring.data_key(transport_entry("acme"))
    monkeypatch.setenv("DIALBACK_MASTER_KEY_FILE", str(master))
    monkeypatch.delenv("DIALBACK_KEYRING_FILE", raising=False)
    old = master.read_bytes()
    r = CliRunner().invoke(app, ["keys", "rotate-master"])
    assert r.exit_code == 0, r.output
    assert "re-wrapped 1 keys" in r.output and master.read_bytes() != old
    assert Keyring(load_master_key(master), ring_path).find(transport_entry("acme")) == key
    assert key.hex() not in r.output
    missing = CliRunner().invoke(app, ["keys", "rotate-master", "--master-key-file", str(tmp_path / "nope.key")])
    assert missing.exit_code == 1 and "no master key" in missing.output


def test_cli_rotate_data_adds_a_generation(tmp_path, monkeypatch):
    import json

    from cli.main import app

    master, ring_path, ring = _ring(tmp_path)
    key = ring.data_key("dialback-acme")
    monkeypatch.setenv("DIALBACK_MASTER_KEY_FILE", str(master))
    monkeypatch.delenv("DIALBACK_KEYRING_FILE", raising=False)
    monkeypatch.delenv("DIALBACK_BUCKET_PREFIX", raising=False)
    r = CliRunner().invoke(app, ["keys", "rotate-data", "--tenant", "acme"])
    assert r.exit_code == 0, r.output
    entries = json.loads(ring_path.read_text())["wrapped"]
    assert "dialback-acme" in entries and [n for n in entries if n.startswith("data:dialback-acme:2:")]
    assert Keyring(load_master_key(master), ring_path).find("dialback-acme") == key  # generation 1 kept
    typo = CliRunner().invoke(app, ["keys", "rotate-data", "--tenant", "acmee"])
    assert typo.exit_code == 1 and "no data key yet" in typo.output
    assert not [n for n in json.loads(ring_path.read_text())["wrapped"] if "acmee" in n]
