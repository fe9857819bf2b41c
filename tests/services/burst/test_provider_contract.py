"""One provider contract, run on the in-memory cloud and on the real local OpenStack."""

from __future__ import annotations

import uuid

import pytest

from services.burst.errors import QuotaExceeded, UnknownFlavor
from services.burst.provider.base import DELETE_ORDER, Provider


class ProviderContract:
    """Subclasses provide a `provider` fixture and a `set_instance_quota(provider, n)` hook."""

    def tags(self):
        return {"dialback-op": f"ct-{uuid.uuid4().hex[:8]}", "dialback-tenant": "acme"}

    def net(self, provider: Provider) -> str:
        return provider.find_network("dialback-prod")

    def test_flavors_and_networks(self, provider):
        fl = provider.flavors()
        assert {"m1.tiny", "m1.small"} <= set(fl)
        assert fl["m1.tiny"].ram_mb == 512
        assert provider.find_network("dialback-prod") and provider.find_network("dialback-drtest")
        assert provider.find_network("no-such-network") is None

    def test_image_upload_matches_file_and_is_idempotent(self, provider, small_image):
        tags = self.tags()
        try:
            a = provider.ensure_image("ct-image", small_image.path, tags)
            assert (a.checksum, a.size, a.status) == (small_image.md5, small_image.size, "active")
            b = provider.ensure_image("ct-image", small_image.path, tags)
            assert b.id == a.id
            assert [r.id for r in provider.list_tagged(tags)] == [a.id]
        finally:
            self.purge(provider, tags)

    def test_server_boots_on_tagged_port_and_everything_is_found_and_removed(self, provider, small_image):
        tags = self.tags()
        try:
            img = provider.ensure_image("ct-image", small_image.path, tags)
            port = provider.ensure_port("ct-port", self.net(provider), tags)
            assert provider.ensure_port("ct-port", self.net(provider), tags) == port
            sid = provider.ensure_server("ct-server", img.id, "m1.tiny", port, tags)
            assert provider.ensure_server("ct-server", img.id, "m1.tiny", port, tags) == sid
            info = provider.wait_active(sid, 120)
            assert info.status == "ACTIVE"
            assert list(info.addresses) == ["dialback-prod"] and info.addresses["dialback-prod"][0].count(".") == 3
            assert sorted(r.kind for r in provider.list_tagged(tags)) == ["image", "port", "server"]
            assert provider.list_tagged({**tags, "dialback-tenant": "other"}) == []  # tags must all match
        finally:
            self.purge(provider, tags)
        assert provider.list_tagged(tags) == []

    def test_isolated_network_is_tagged(self, provider):
        tags = self.tags()
        try:
            net, sub = provider.ensure_network("ct-net", "10.253.0.0/24", tags)
            assert provider.ensure_network("ct-net", "10.253.0.0/24", tags) == (net, sub)
            assert sorted(r.kind for r in provider.list_tagged(tags)) == ["network", "subnet"]
        finally:
            self.purge(provider, tags)
        assert provider.list_tagged(tags) == []

    def test_unknown_flavor(self, provider, small_image):
        tags = self.tags()
        try:
            img = provider.ensure_image("ct-image", small_image.path, tags)
            with pytest.raises(UnknownFlavor, match="m9.huge"):
                provider.ensure_server("ct-server", img.id, "m9.huge", None, tags)
            assert [r.kind for r in provider.list_tagged(tags)] == ["image"]
        finally:
            self.purge(provider, tags)

    def test_quota_exceeded(self, provider, small_image):
        tags = self.tags()
        restore = self.set_instance_quota(provider, 0)
        try:
            assert provider.headroom().instances == 0
            img = provider.ensure_image("ct-image", small_image.path, tags)
            with pytest.raises(QuotaExceeded, match="(?i)quota"):
                provider.ensure_server("ct-server", img.id, "m1.tiny", None, tags)
            assert not [r for r in provider.list_tagged(tags) if r.kind == "server"]
        finally:
            restore()
            self.purge(provider, tags)

    def test_deleting_twice_is_fine(self, provider):
        tags = self.tags()
        net, sub = provider.ensure_network("ct-net", "10.253.1.0/24", tags)
        self.purge(provider, tags)
        from services.burst.provider.base import Resource
        provider.delete(Resource("network", net, "ct-net"))
        provider.delete(Resource("server", str(uuid.uuid4()), "gone"))
        assert provider.list_tagged(tags) == []

    @staticmethod
    def purge(provider, tags):
        left = provider.list_tagged(tags)
        for kind in DELETE_ORDER:
            for r in left:
                if r.kind == kind:
                    provider.delete(r)


class TestMemoryProvider(ProviderContract):
    @pytest.fixture
    def provider(self, memory_provider):
        return memory_provider

    def set_instance_quota(self, provider, n):
        old = provider.max_instances
        provider.max_instances = len(provider.res["server"]) + n

        def restore():
            provider.max_instances = old
        return restore


class TestOpenStackProvider(ProviderContract):
    @pytest.fixture
    def provider(self, openstack_cloud):
        from services.burst.provider.openstack import OpenStackProvider
        p = OpenStackProvider(**openstack_cloud.connect_kwargs())
        yield p
        p.conn.close()

    def set_instance_quota(self, provider, n):
        return set_instance_quota(provider, n)


def set_instance_quota(provider, n):
    """Leave room for exactly n more servers in the project; returns a function that restores it."""
    conn = provider.conn
    project = conn.current_project_id
    old = conn.get_compute_quotas(project).instances
    used = conn.compute.get_limits().absolute.instances_used
    conn.set_compute_quotas(project, instances=used + n)

    def restore():
        conn.set_compute_quotas(project, instances=old)
    return restore
