"""The `openstack_cloud` session fixture: a real local OpenStack, or the one named by env vars.

With DIALBACK_OS_AUTH_URL set (and DIALBACK_OS_USERNAME / _PASSWORD /
_PROJECT_NAME / _REGION_NAME), that cloud is used as is. Otherwise the local
control plane is started (deploy/local/openstack) in
$DIALBACK_OS_STATE_DIR (default: <cache>/openstack/test-state, kept between
runs so later runs start warm) and stopped afterwards, unless it was
already running. With CI=true a cloud that cannot start fails the tests
instead of skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.servers import unavailable


def _from_env():
    from deploy.local.openstack.provision import OpenStackEndpoints

    e = os.environ
    return OpenStackEndpoints(auth_url=e["DIALBACK_OS_AUTH_URL"], username=e.get("DIALBACK_OS_USERNAME", "admin"),
                              password=e.get("DIALBACK_OS_PASSWORD", ""),
                              project_name=e.get("DIALBACK_OS_PROJECT_NAME", "admin"),
                              region_name=e.get("DIALBACK_OS_REGION_NAME", "RegionOne"))


def local_state_dir() -> Path:
    from shared.config import default_cache

    return Path(os.environ.get("DIALBACK_OS_STATE_DIR", default_cache() / "openstack" / "test-state"))


@pytest.fixture(scope="session")
def openstack_cloud():
    if os.environ.get("DIALBACK_OS_AUTH_URL"):
        yield _from_env()
        return
    from deploy.local.openstack import provision as osp

    state = local_state_dir()
    already = all(s["running"] for s in osp.status(state).values())
    try:
        ep = osp.start(state)
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        if not already:
            osp.stop(state)
        unavailable("the local OpenStack control plane", err)
    yield ep
    if not already:
        osp.stop(state)
