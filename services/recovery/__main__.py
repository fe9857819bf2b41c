"""``python -m services.recovery``: serve the recovery API on 127.0.0.1."""

from __future__ import annotations

import logging

import uvicorn

from services.recovery.app import create_app
from services.recovery.config import RecoverySettings
from shared.allocator import tune_allocator
from shared.objectstore.factory import store_from_settings
from shared.auth import TenantAuth
from shared.licences import LicenceWatch


def main() -> None:
    settings = RecoverySettings()
    tune_allocator()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tls = settings.uvicorn_tls_or_exit(settings.recovery_host)
    licences = LicenceWatch(settings.kafka_bootstrap, settings.licensing_topic).start()
    app = create_app(store_from_settings(settings), TenantAuth(settings.tenants_path()), settings,
                     licences=licences)
    uvicorn.run(app, host=settings.recovery_host, port=settings.recovery_port, log_level=settings.log_level.lower(),
                **tls)


if __name__ == "__main__":
    main()
