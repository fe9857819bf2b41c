"""One-time database schemas and keys (SQLite), each step guarded by a marker file.

Independent services sync in parallel; inside one service the order matters
(nova: api db, cell0, cell1, main db). A failed step leaves no marker, so the
next `up` retries it; every command here is itself safe to re-run.
"""

from __future__ import annotations

import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deploy.local.openstack import layout as L
from deploy.local.process import StartError

_NEUTRON_SCHEMA = """
# neutron-db-manage upgrade fails on SQLite (ALTER of constraints):
# create the head schema directly, then stamp it.
import sys
from oslo_config import cfg
from neutron.common import config as n_config
from neutron.db.migration.models import head
import sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[1])
head.get_metadata().create_all(engine)
"""


def _steps(lay: L.Layout) -> dict[str, list[list[str]]]:
    c = lambda svc, name: str(lay.conf_dir(svc) / name)  # noqa: E731
    ks = [str(lay.bin("keystone-manage")), "--config-file", c("keystone", "keystone.conf")]
    nova = [str(lay.bin("nova-manage")), "--config-file", c("nova", "nova.conf")]
    return {
        "keystone": [
            ks + ["db_sync"],
            ks + ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ks + ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ks + ["bootstrap", "--bootstrap-password", L.ADMIN_PASSWORD,
                  "--bootstrap-admin-url", L.url("keystone"), "--bootstrap-internal-url", L.url("keystone"),
                  "--bootstrap-public-url", L.url("keystone"), "--bootstrap-region-id", L.REGION],
        ],
        "placement": [[str(lay.bin("placement-manage")), "--config-file", c("placement", "placement.conf"),
                       "db", "sync"]],
        "glance": [[str(lay.bin("glance-manage")), "--config-file", c("glance", "glance-api.conf"), "db_sync"]],
        "nova": [
            nova + ["api_db", "sync"],
            nova + ["cell_v2", "map_cell0", "--database_connection", lay.db_url("nova_cell0")],
            nova + ["cell_v2", "create_cell", "--name", "cell1"],
            nova + ["db", "sync"],
        ],
        "neutron": [
            [str(lay.bin("python")), "-c", _NEUTRON_SCHEMA, lay.db_url("neutron")],
            [str(lay.bin("neutron-db-manage")), "--config-file", c("neutron", "neutron.conf"), "stamp", "heads"],
        ],
        "cinder": [[str(lay.bin("cinder-manage")), "--config-file", c("cinder", "cinder.conf"), "db", "sync"]],
    }


def _run_service(lay: L.Layout, svc: str, cmds: list[list[str]]) -> None:
    marker = lay.marker(f"db-{svc}")
    if marker.exists():
        return
    log = lay.log / f"dbsync-{svc}.log"
    with open(log, "ab") as out:
        for cmd in cmds:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            r = subprocess.run(cmd, stdout=out, stderr=out, cwd=lay.state_dir)
            # create_cell exits 2 when the cell already exists: that is success here.
            if r.returncode != 0 and not (cmd[-2:] == ["--name", "cell1"] and r.returncode == 2):
                raise StartError(f"{svc} database setup failed at `{' '.join(cmd[:1] + cmd[3:])}`; see {log}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("ok\n")


def sync_all(lay: L.Layout) -> None:
    steps = _steps(lay)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_run_service, lay, svc, cmds) for svc, cmds in steps.items()]
        for f in futures:
            f.result()
    journal_mode(lay)


def journal_mode(lay: L.Layout, mode: str = "DELETE") -> None:
    """SQLite's default rollback journal, with busy waits (the URLs' timeout) doing the rest.

    WAL was tried: under load, nova's ORM got SQLITE_BUSY_SNAPSHOT at once (a read
    transaction upgraded to a write after another commit), which no busy timeout waits
    out, and a server build failed. The mode is a property of the file, so set it back
    explicitly on state dirs made by that version.
    """
    for db in sorted(lay.data.glob("*.db")):
        con = sqlite3.connect(db, timeout=60)
        try:
            con.execute(f"PRAGMA journal_mode={mode}")
        finally:
            con.close()
