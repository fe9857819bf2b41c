"""A real OpenStack control plane (keystone, glance, placement, nova/fake, neutron, cinder/fake) on 127.0.0.1.

Entry points live in `deploy.local.openstack.provision` (provision, start, stop, status);
`from deploy.local.openstack import provision` gives that module.
"""
