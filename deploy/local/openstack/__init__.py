"""A real OpenStack control plane (keystone, glance, placement, nova/fake, neutron, cinder/fake) on 127.0.0.1."""

from deploy.local.openstack.provision import OpenStackEndpoints, provision, start, status, stop

__all__ = ["OpenStackEndpoints", "provision", "start", "status", "stop"]
