"""The cloud's catalog and starting resources, made through openstacksdk in one go.

Phase one (needs only Keystone): service project and users, the `service`
role, services and endpoints. Phase two (needs every API): flavors, the DR
test and production networks, quotas. Every call is find-or-create, so a
re-run changes nothing.
"""

from __future__ import annotations

import time

import openstack
from openstack.connection import Connection

from deploy.local.openstack import layout as L

SERVICES = {  # name -> (type, url)
    "glance": ("image", L.url("glance")),
    "placement": ("placement", L.url("placement")),
    "nova": ("compute", L.url("nova")),
    "neutron": ("network", L.url("neutron")),
    "cinderv3": ("block-storage", L.url("cinder")),
}

FLAVORS = {"m1.tiny": (1, 512, 1), "m1.small": (1, 2048, 20), "m1.medium": (2, 4096, 40)}

NETWORKS = {"dialback-drtest": "10.250.0.0/24", "dialback-prod": "10.251.0.0/24"}


def admin_connection() -> Connection:
    return openstack.connect(
        auth_url=L.url("keystone"), username=L.ADMIN_USER, password=L.ADMIN_PASSWORD,
        project_name=L.ADMIN_PROJECT, user_domain_name="Default", project_domain_name="Default",
        region_name=L.REGION, identity_api_version="3",
    )


def identity(conn: Connection) -> None:
    service_project = conn.identity.find_project("service") or conn.identity.create_project(
        name="service", domain_id="default", description="OpenStack service users")
    roles = {r: conn.identity.find_role(r) or conn.identity.create_role(name=r) for r in ("admin", "service", "member")}
    for user in L.SERVICE_USERS:
        u = conn.identity.find_user(user) or conn.identity.create_user(
            name=user, password=L.SERVICE_PASSWORD, domain_id="default", default_project_id=service_project.id)
        for role in ("admin", "service"):
            conn.identity.assign_project_role_to_user(service_project, u, roles[role])
    for name, (stype, url) in SERVICES.items():
        svc = conn.identity.find_service(name) or conn.identity.create_service(name=name, type=stype)
        have = {e.interface for e in conn.identity.endpoints(service_id=svc.id)}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                conn.identity.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=L.REGION)


def wait_for_compute_host(conn: Connection, since: float, timeout: float = 180.0) -> None:
    """Nova can schedule only once nova-compute has reported since it (re)started and its host
    is mapped into a cell. After a warm restart the old records look fine, hence `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fresh = [s for s in conn.compute.services(binary="nova-compute")
                     if s.state == "up" and s.updated_at and _epoch(s.updated_at) >= since]
            if fresh and list(conn.compute.hypervisors()):
                return
        except openstack.exceptions.SDKException:
            pass
        time.sleep(1.0)
    raise TimeoutError("nova-compute did not report in time; see nova-compute.log and nova-conductor.log")


def _epoch(stamp: str) -> float:
    from datetime import datetime, timezone
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def resources(conn: Connection, since: float = 0.0) -> None:
    for name, (vcpus, ram, disk) in FLAVORS.items():
        if not conn.compute.find_flavor(name, ignore_missing=True):
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
    admin = conn.identity.find_project(L.ADMIN_PROJECT)
    for name, cidr in NETWORKS.items():
        net = conn.network.find_network(name)
        if net is None:
            # shared: every project (tenant) may boot on it; DR tests get their own anyway.
            net = conn.network.create_network(name=name, shared=True, project_id=admin.id)
        if not list(conn.network.subnets(network_id=net.id)):
            conn.network.create_subnet(network_id=net.id, name=f"{name}-v4", ip_version=4, cidr=cidr,
                                       enable_dhcp=False, gateway_ip=None)
    # Room for tests and benches on one machine; tests shrink quotas per project.
    conn.set_compute_quotas(admin.id, instances=50, cores=200, ram=512000)
    wait_for_compute_host(conn, since)


def run(phase: str, since: float = 0.0) -> None:
    conn = admin_connection()
    try:
        identity(conn) if phase == "identity" else resources(conn, since)
    finally:
        conn.close()
