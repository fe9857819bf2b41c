"""The control plane's processes: one RabbitMQ, six WSGI APIs under uwsgi, five daemons."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from deploy.local.openstack import layout as L
from deploy.local.process import Managed, port_open

# service -> (config dir name, WSGI module:callable or a file, port)
APIS = {
    "keystone": ("keystone", "keystone.wsgi.api:application"),
    "placement": ("placement", "placement.wsgi.api:application"),
    "glance": ("glance", "glance.wsgi.api:application"),
    "nova": ("nova", "nova.wsgi.osapi_compute:application"),
    "neutron": ("neutron", None),  # neutron_wsgi.py beside its config
    "cinder": ("cinder", "cinder.wsgi.api:application"),
}

DAEMONS = {
    "nova-conductor": ("nova", "nova.conf"),
    "nova-scheduler": ("nova", "nova.conf"),
    "nova-compute": ("nova", "nova.conf"),
    "cinder-scheduler": ("cinder", "cinder.conf"),
    "cinder-volume": ("cinder", "cinder.conf"),
}


def _http_ready(port: int) -> bool:
    if not port_open(port):
        return False
    try:
        urllib.request.urlopen(f"http://{L.HOST}:{port}/", timeout=3)
    except urllib.error.HTTPError:
        pass  # any HTTP answer (300, 401, 404) means the app loaded
    return True


def _config_env(lay: L.Layout, svc: str) -> dict[str, str]:
    conf = lay.conf_dir(svc)
    up = svc.upper()
    env = {f"OS_{up}_CONFIG_DIR": str(conf), "PATH": f"{lay.venv / 'bin'}:{os.environ.get('PATH', '')}"}
    if svc == "neutron":  # one file holds the ml2 options too
        env["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf"
    return env


def api(lay: L.Layout, svc: str) -> Managed:
    conf_name, module = APIS[svc]
    port = L.PORTS[svc]
    argv = [str(lay.bin("uwsgi")), "--http-socket", f"{L.HOST}:{port}", "--home", str(lay.venv),
            "--master", "--processes", "1", "--threads", "4", "--die-on-term", "--need-app", "--lazy-apps",
            "--http-chunked-input", "--http-raw-body", "--buffer-size", "65535", "--socket-timeout", "300",
            "--http-timeout", "300", "--add-header", "Connection: close",
            "--logto", str(lay.log / f"{svc}-uwsgi.log")]
    if svc == "cinder":  # cinder's WSGI app parses sys.argv instead of reading an env var
        argv += ["--pyargv", f"--config-file {lay.conf_dir('cinder') / 'cinder.conf'}"]
    if module:
        argv += ["--module", module]
    else:
        argv += ["--wsgi-file", str(lay.conf_dir(conf_name) / "neutron_wsgi.py")]
    return Managed(name=f"{svc}-api", argv=argv, run_dir=lay.run, ready=lambda: _http_ready(port),
                   env=_config_env(lay, conf_name), cwd=lay.state_dir)


def daemon(lay: L.Layout, name: str) -> Managed:
    svc, conf = DAEMONS[name]
    argv = [str(lay.bin(name)), "--config-file", str(lay.conf_dir(svc) / conf)]
    return Managed(name=name, argv=argv, run_dir=lay.run, ready=lambda: True,
                   env=_config_env(lay, svc), cwd=lay.state_dir)


def rabbitmq(lay: L.Layout) -> Managed:
    base = lay.data / "rabbitmq"
    # The upstream script (not Debian's wrapper, which drops to the rabbitmq user
    # and so could not reach a state dir under /root) runs as the caller.
    env = {
        "RABBITMQ_NODENAME": "dialback@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": L.HOST,
        "RABBITMQ_NODE_PORT": str(L.PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(L.PORTS["rabbitmq_dist"]),
        "ERL_EPMD_ADDRESS": L.HOST,
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(lay.log / "rabbitmq"),
        "RABBITMQ_CONFIG_FILE": str(lay.conf_dir("rabbitmq") / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(lay.conf_dir("rabbitmq") / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(lay.run / "rabbitmq-beam.pid"),
        "HOME": str(base),
    }
    return Managed(name="rabbitmq", argv=["/usr/lib/rabbitmq/bin/rabbitmq-server"], run_dir=lay.run,
                   ready=lambda: port_open(L.PORTS["rabbitmq"]), env=env, cwd=base)


def all_processes(lay: L.Layout) -> list[Managed]:
    return [rabbitmq(lay)] + [api(lay, s) for s in APIS] + [daemon(lay, d) for d in DAEMONS]
