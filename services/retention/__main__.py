"""``python -m services.retention``: run the retention worker.

Waits until at least one tenant's topics exist, runs the faust worker on
them, and re-executes itself when the set of tenants changes (faust cannot
resubscribe by pattern). Killing it at any moment loses nothing: offsets are
committed only after the objects are durable.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from services.retention.config import RetentionSettings
from services.retention.topics import discover
from shared.allocator import tune_allocator
from shared.objectstore.factory import store_from_settings


def main() -> None:
    settings = RetentionSettings()
    tune_allocator()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("services.retention")
    writes: list[str] = []
    control: list[str] = []
    while not writes:
        try:
            writes, control = discover(settings.kafka_bootstrap, settings.tenants_path())
        except Exception as err:
            log.warning("%s; retrying", err)
        if not writes:
            log.info("no tenant writes topics yet (tenants file %s); waiting", settings.tenants_path())
            time.sleep(settings.retention_rescan_interval)
    store = store_from_settings(settings)

    from services.retention.app import RESTART, build_app  # faust import is slow; only when needed

    app, _ = build_app(settings, store, writes, control)
    log.info("consuming %s and %s", writes, control)
    worker = app.Worker(loglevel=settings.log_level, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    if RESTART["requested"]:
        os.execv(sys.executable, [sys.executable, "-m", "services.retention"])


if __name__ == "__main__":
    main()
