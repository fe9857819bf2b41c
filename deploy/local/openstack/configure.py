"""Render the config templates into the state dir (cheap; done on every start).

Each service gets its own config dir, found through OS_<SERVICE>_CONFIG_DIR,
holding its rendered .conf and the api-paste file copied from the venv.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from deploy.local.openstack import layout as L

TEMPLATES = Path(__file__).with_name("templates")

# template -> (service config dir, file name)
FILES = {
    "keystone.conf": ("keystone", "keystone.conf"),
    "placement.conf": ("placement", "placement.conf"),
    "glance-api.conf": ("glance", "glance-api.conf"),
    "nova.conf": ("nova", "nova.conf"),
    "neutron.conf": ("neutron", "neutron.conf"),
    "cinder.conf": ("cinder", "cinder.conf"),
    "rabbitmq.conf": ("rabbitmq", "rabbitmq.conf"),
}

# paste files shipped in the venv's etc/<service>
PASTE = {
    "nova": ["api-paste.ini"],
    "glance": ["glance-api-paste.ini"],
    "neutron": ["api-paste.ini"],
    "cinder": ["api-paste.ini"],
}


def _auth(user: str) -> str:
    return "\n".join([
        "auth_type = password",
        f"auth_url = {L.url('keystone')}",
        f"www_authenticate_uri = {L.url('keystone')}",
        "project_domain_name = Default",
        "user_domain_name = Default",
        "project_name = service",
        f"username = {user}",
        f"password = {L.SERVICE_PASSWORD}",
        f"region_name = {L.REGION}",
    ])


def _authtoken(user: str) -> str:
    return "[keystone_authtoken]\n" + _auth(user) + "\nservice_token_roles_required = true\nmemcached_servers =\n"


def values(lay: L.Layout) -> dict[str, str]:
    v = {
        "host": L.HOST, "region": L.REGION, "log": str(lay.log), "data": str(lay.data), "etc": str(lay.etc),
        "transport_url": f"rabbit://{L.RABBIT_USER}:{L.RABBIT_PASSWORD}@{L.HOST}:{L.PORTS['rabbitmq']}/",
        "rabbit_user": L.RABBIT_USER, "rabbit_password": L.RABBIT_PASSWORD,
        "auth_nova_neutron": _auth("nova"), "auth_nova_placement": _auth("nova"),
        "auth_nova_service": _auth("nova"),
    }
    for name, port in L.PORTS.items():
        v[f"port_{name}"] = str(port)
    for db in ("keystone", "placement", "glance", "nova", "nova_api", "neutron", "cinder"):
        v[f"db_{db}"] = lay.db_url(db)
    for user in L.SERVICE_USERS:
        v[f"authtoken_{user}"] = _authtoken(user)
    return v


def render(lay: L.Layout) -> None:
    v = values(lay)
    for d in (lay.log, lay.run, lay.data / "glance" / "images", lay.data / "glance" / "staging",
              lay.data / "glance" / "tasks", lay.data / "nova" / "instances", lay.data / "neutron",
              lay.data / "cinder", lay.data / "rabbitmq"):
        d.mkdir(parents=True, exist_ok=True)
    for svc in ("glance", "nova", "neutron", "cinder"):
        (lay.data / "lock" / svc).mkdir(parents=True, exist_ok=True)
    for template, (svc, name) in FILES.items():
        out = lay.conf_dir(svc) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template((TEMPLATES / template).read_text()).substitute(v))
    for svc, names in PASTE.items():
        for name in names:
            src = lay.venv / "etc" / svc / name
            if src.exists():
                shutil.copyfile(src, lay.conf_dir(svc) / name)
    shutil.copyfile(Path(__file__).with_name("neutron_wsgi.py"), lay.conf_dir("neutron") / "neutron_wsgi.py")
