"""uwsgi entry for neutron-server that finishes SQLAlchemy's mapper setup.

With SQLAlchemy 2.1, GET /v2.0/ports failed on Port.port_forwardings until the
mappers were configured explicitly after the app (and its plugins) loaded.
"""

import sqlalchemy.orm
from neutron.wsgi.api import application  # noqa: F401 - uwsgi looks it up by name

sqlalchemy.orm.configure_mappers()
