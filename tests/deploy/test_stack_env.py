"""`stack up` writes stack.env with the MinIO root secret in it: only its owner may read it."""

from __future__ import annotations

import stat

from deploy.local.stack import Stack


def test_stack_env_is_owner_only_and_holds_the_secret(tmp_path):
    stack = Stack(tmp_path / "home", tmp_path / "cache")
    env = stack.env()
    path = stack.write_env(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"export DIALBACK_S3_SECRET_KEY={env['DIALBACK_S3_SECRET_KEY']}\n" in path.read_text()


def test_an_old_world_readable_stack_env_is_tightened(tmp_path):
    stack = Stack(tmp_path / "home", tmp_path / "cache")
    old = tmp_path / "home" / "stack.env"
    old.parent.mkdir(parents=True)
    old.write_text("export DIALBACK_S3_SECRET_KEY=old\n")
    old.chmod(0o644)
    path = stack.write_env(stack.env())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "=old" not in path.read_text()


def test_openstack_client_files_are_owner_only(tmp_path):
    """endpoints.json, openstack.env and clouds.yaml hold the OpenStack admin password."""
    from deploy.local.openstack.provision import OpenStackEndpoints, _layout, _write_client_files

    lay = _layout(tmp_path / "state", tmp_path / "cache")
    lay.state_dir.mkdir(parents=True)
    ep = OpenStackEndpoints(**{f: "x-secret" if f == "password" else "v" for f in OpenStackEndpoints.__dataclass_fields__})
    _write_client_files(lay, ep)
    for name in ("endpoints.json", "openstack.env", "clouds.yaml"):
        p = lay.state_dir / name
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, name
        assert "x-secret" in p.read_text(), name
