from __future__ import annotations

import pytest

from agent.profile import synthetic as syn
from agent.profile.format import Header

START = 1_700_000_000


@pytest.fixture
def make_profile(tmp_path):
    """Write a synthetic profile: make_profile(name, series, server=..., **write_profile kwargs) -> path."""
    def make(name, series, server=None, volume="disk0", volume_size=0, start=START, **kw):
        path = tmp_path / name
        syn.write_profile(str(path), Header(server or name, volume, volume_size), start, series, **kw)
        return path
    return make
