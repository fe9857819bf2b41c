"""Agent credentials file: 0600, refused when others can read it, secrets out of reprs."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from shared.credentials import AgentCredentials, CredentialsError, read_credentials, write_credentials
from shared.crypto.transport import new_key


def test_write_read_round_trip_0600(tmp_path):
    key = new_key()
    path = tmp_path / "acme.credentials.json"
    write_credentials(path, AgentCredentials("acme", "tok-123", key))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = read_credentials(path)
    assert (creds.tenant, creds.token, creds.transport_key) == ("acme", "tok-123", key)
    assert "tok-123" not in repr(creds) and base64.b64encode(key).decode() not in repr(creds)


def test_no_overwrite_and_no_key(tmp_path):
    path = tmp_path / "c.json"
    write_credentials(path, AgentCredentials("acme", "tok", None))
    assert read_credentials(path).transport_key is None
    with pytest.raises(CredentialsError, match="already exists"):
        write_credentials(path, AgentCredentials("acme", "other", None))
    assert read_credentials(path).token == "tok"


def test_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "c.json"
    write_credentials(path, AgentCredentials("acme", "tok", new_key()))
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        read_credentials(path)


def test_bad_files_name_the_problem_without_secrets(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"tenant": "acme", "token": "tok", "transport_key": "c2hvcnQ="}')
    os.chmod(path, 0o600)
    with pytest.raises(CredentialsError, match="32 bytes") as err:
        read_credentials(path)
    assert "c2hvcnQ=" not in str(err.value)
    path.write_text("not json")
    with pytest.raises(CredentialsError, match="not valid"):
        read_credentials(path)
    with pytest.raises(CredentialsError, match="cannot read"):
        read_credentials(tmp_path / "missing.json")
