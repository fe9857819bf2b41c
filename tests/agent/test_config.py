"""Agent settings from DIALBACK_AGENT_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import AgentSettings, parse_volumes


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALBACK_AGENT_INGEST", "http://127.0.0.1:18080")
    monkeypatch.setenv("DIALBACK_AGENT_TOKEN", "tok")
    monkeypatch.setenv("DIALBACK_AGENT_GROUP", "web")
    monkeypatch.setenv("DIALBACK_AGENT_VOLUMES", "disk0=/srv/a.img, disk1=/dev/sdb")
    monkeypatch.setenv("DIALBACK_AGENT_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("DIALBACK_AGENT_SPOOL_LIMIT_BYTES", "4000")
    s = AgentSettings()
    assert s.volume_map == {"disk0": Path("/srv/a.img"), "disk1": Path("/dev/sdb")}
    assert s.token.get_secret_value() == "tok" and s.group == "web"
    assert s.low_water == 1000 and s.pace == 2000


@pytest.mark.parametrize("spec", ["disk0", "disk0=", "bad name=/x", "a=/x,a=/y"])
def test_bad_volume_specs_are_refused_with_a_hint(spec):
    with pytest.raises(ValueError):
        parse_volumes(spec)


def test_bad_env_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("DIALBACK_AGENT_NBD_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="nbd_port"):
        AgentSettings()
