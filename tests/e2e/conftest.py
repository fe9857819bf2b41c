from __future__ import annotations

import pytest

from deploy.local.pipeline import Pipeline


@pytest.fixture
def pipeline(stack_env, tmp_path):
    p = Pipeline.create(stack_env, tmp_path / "home")
    yield p
    p.stop_all()
