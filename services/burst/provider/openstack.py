"""The OpenStack provider, on openstacksdk.

Tagging: servers get nova tags "k=v" and metadata k: v; images get Glance
tags and properties, both in the create request. Neutron ignores tags in a
create request here, so networks, subnets and ports are created with the tags
in their description (atomic) and tagged right after; lookups and cleanup
use both, so a crash between the two calls leaves nothing unfound.
Servers boot on a port we create and tag ourselves: nova would leave the
ports it makes untagged.
"""

from __future__ import annotations

import time
from pathlib import Path

import openstack
from openstack import exceptions as osexc

from services.burst.errors import BurstError, ProvisionFailed, QuotaExceeded, UnknownFlavor, UnknownNetwork
from services.burst.provider.base import (Flavor, Headroom, ImageInfo, Provider, Resource, ServerInfo, tag_list)


def _is_quota(err: Exception) -> bool:
    text = str(err).lower()
    return "quota" in text and ("exceed" in text or "over" in text)


class OpenStackProvider(Provider):
    def __init__(self, **connect_kwargs) -> None:
        # A hung API call must not stall an operation forever: it fails, and the ticker retries.
        self.conn = openstack.connect(api_timeout=120, **connect_kwargs)

    @classmethod
    def from_settings(cls, s) -> "OpenStackProvider":
        return cls(auth_url=s.os_auth_url, username=s.os_username, password=s.os_password.get_secret_value(),
                   project_name=s.os_project_name, region_name=s.os_region_name,
                   user_domain_name=s.os_user_domain_name, project_domain_name=s.os_project_domain_name,
                   identity_api_version="3")

    def flavors(self) -> dict[str, Flavor]:
        return {f.name: Flavor(f.name, f.vcpus, f.ram, f.disk) for f in self.conn.compute.flavors()}

    def find_network(self, name: str) -> str | None:
        net = self.conn.network.find_network(name, ignore_missing=True)
        return net.id if net else None

    def headroom(self) -> Headroom:
        a = self.conn.compute.get_limits().absolute

        def left(limit, used):
            return None if limit is None or limit < 0 else max(0, limit - (used or 0))

        return Headroom(left(a.instances, a.instances_used), left(a.total_cores, a.total_cores_used),
                        left(a.total_ram, a.total_ram_used))

    def _neutron(self, kind: str, name: str | None, tags: dict[str, str], **query) -> list:
        """Resources of a kind carrying the tags, or (crash window) only the description."""
        lister = getattr(self.conn.network, kind)
        tl = tag_list(tags)
        extra = {"name": name} if name else {}
        found = {r.id: r for r in lister(tags=",".join(tl), **extra, **query)}
        found.update({r.id: r for r in lister(description=" ".join(tl), **extra, **query)})
        return list(found.values())

    def _tag(self, res, tags: dict[str, str]) -> None:
        tl = tag_list(tags)
        if sorted(res.tags or []) != tl:
            self.conn.network.set_tags(res, tl)

    def ensure_network(self, name: str, cidr: str, tags: dict[str, str]) -> tuple[str, str]:
        desc = " ".join(tag_list(tags))
        nets = self._neutron("networks", name, tags)
        net = nets[0] if nets else self.conn.network.create_network(name=name, description=desc,
                                                                     port_security_enabled=False)
        self._tag(net, tags)
        subs = self._neutron("subnets", None, tags, network_id=net.id)
        sub = subs[0] if subs else self.conn.network.create_subnet(
            network_id=net.id, name=name, ip_version=4, cidr=cidr, enable_dhcp=False, gateway_ip=None,
            description=desc)
        self._tag(sub, tags)
        return net.id, sub.id

    def ensure_image(self, name: str, path: Path, tags: dict[str, str]) -> ImageInfo:
        tl = tag_list(tags)
        for img in self.conn.image.images(name=name, tag=tl):
            if img.status == "active":
                return ImageInfo(img.id, img.checksum, img.size, img.status)
            # An upload cut short by a crash: start again from a clean image.
            self.conn.image.delete_image(img, ignore_missing=True)
        img = self.conn.image.create_image(
            name=name, filename=str(path), disk_format="raw", container_format="bare", tags=tl,
            allow_duplicates=True, wait=True, timeout=3600, meta=None, **{k: v for k, v in tags.items()})
        img = self.conn.image.get_image(img.id)
        if img.status != "active":
            raise ProvisionFailed(f"Glance left image {img.id} in status {img.status!r} after upload")
        return ImageInfo(img.id, img.checksum, img.size, img.status)

    def ensure_port(self, name: str, network_id: str, tags: dict[str, str]) -> str:
        ports = self._neutron("ports", name, tags)
        if ports:
            port = ports[0]
        else:
            try:
                port = self.conn.network.create_port(network_id=network_id, name=name,
                                                     description=" ".join(tag_list(tags)))
            except osexc.NotFoundException as err:
                raise UnknownNetwork(f"network {network_id} does not exist") from err
            except osexc.HttpException as err:
                if _is_quota(err):
                    raise QuotaExceeded(f"Neutron refused a port: {err}. Raise the network quota.") from err
                raise
        self._tag(port, tags)
        return port.id

    def ensure_server(self, name: str, image_id: str, flavor: str, port_id: str | None,
                      tags: dict[str, str]) -> str:
        tl = tag_list(tags)
        for srv in self.conn.compute.servers(name=f"^{name}$", tags=",".join(tl)):
            return srv.id
        fl = self.conn.compute.find_flavor(flavor, ignore_missing=True)
        if fl is None:
            raise UnknownFlavor(f"flavor {flavor!r} does not exist; known: {', '.join(sorted(self.flavors()))}")
        try:
            srv = self.conn.compute.create_server(
                name=name, image_id=image_id, flavor_id=fl.id, tags=tl, metadata=dict(tags),
                networks=[{"port": port_id}] if port_id else "none")
        except osexc.HttpException as err:
            if err.status_code in (403, 413) and _is_quota(err):
                raise QuotaExceeded(f"Nova refused server {name}: {err.details or err}. "
                                    "Raise the project's instance/cores/ram quota or ask for fewer servers.") from err
            raise ProvisionFailed(f"Nova refused server {name}: {err.details or err}") from err
        return srv.id

    def wait_active(self, server_id: str, timeout: float) -> ServerInfo:
        try:
            srv = self.conn.compute.get_server(server_id)
        except osexc.NotFoundException as err:
            raise ProvisionFailed(f"server {server_id} disappeared while building") from err
        try:
            srv = self.conn.compute.wait_for_server(srv, status="ACTIVE", failures=["ERROR"], interval=0.5,
                                                    wait=int(timeout))
        except osexc.ResourceFailure as err:
            fault = (self.conn.compute.get_server(server_id).fault or {}).get("message", "")
            raise ProvisionFailed(f"server {server_id} went to ERROR: {fault or err}") from err
        except osexc.ResourceTimeout as err:
            raise ProvisionFailed(f"server {server_id} not ACTIVE within {timeout:.0f}s") from err
        addrs = {net: [a["addr"] for a in lst] for net, lst in (srv.addresses or {}).items()}
        return ServerInfo(srv.id, srv.status, addrs)

    def list_tagged(self, tags: dict[str, str]) -> list[Resource]:
        if not tags:
            return []
        tl = tag_list(tags)
        c = self.conn
        out = [Resource("server", s.id, s.name) for s in c.compute.servers(tags=",".join(tl))]
        out += [Resource("port", p.id, p.name) for p in self._neutron("ports", None, tags)]
        out += [Resource("volume", v.id, v.name) for v in c.block_storage.volumes(metadata=dict(tags))]
        out += [Resource("image", i.id, i.name) for i in c.image.images(tag=tl)]
        out += [Resource("subnet", s.id, s.name) for s in self._neutron("subnets", None, tags)]
        out += [Resource("network", n.id, n.name) for n in self._neutron("networks", None, tags)]
        return out

    def _delete_server(self, rid: str, wait: float) -> None:
        """Delete and wait until gone. A delete that failed inside nova leaves the server in
        ERROR (seen on the SQLite test cloud: "database is locked"); asking again fixes it."""
        c = self.conn
        deadline = time.monotonic() + wait
        c.compute.delete_server(rid, ignore_missing=True)
        while time.monotonic() < deadline:
            srv = c.compute.find_server(rid, ignore_missing=True)
            if srv is None or srv.status == "DELETED":
                return
            if srv.status == "ERROR" and not srv.task_state:
                c.compute.delete_server(rid, ignore_missing=True)
            time.sleep(0.5)
        raise ProvisionFailed(f"server {rid} still there after {wait:.0f}s; cleanup will retry")

    def delete(self, resource: Resource, wait: float = 120.0) -> None:
        c, rid = self.conn, resource.id
        try:
            if resource.kind == "server":
                self._delete_server(rid, wait)
            elif resource.kind == "port":
                c.network.delete_port(rid, ignore_missing=True)
            elif resource.kind == "volume":
                c.block_storage.delete_volume(rid, ignore_missing=True)
            elif resource.kind == "image":
                c.image.delete_image(rid, ignore_missing=True)
            elif resource.kind == "subnet":
                c.network.delete_subnet(rid, ignore_missing=True)
            elif resource.kind == "network":
                c.network.delete_network(rid, ignore_missing=True)
            else:
                raise BurstError(f"cannot delete unknown resource kind {resource.kind!r}")
        except osexc.NotFoundException:
            pass
        except osexc.ResourceTimeout as err:
            raise ProvisionFailed(f"{resource.kind} {rid} still there after {wait:.0f}s") from err
