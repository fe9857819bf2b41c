"""``python -m bench.securitylib.burst_app``: the real burst app and engine on the in-memory cloud.

Same settings as ``python -m services.burst`` (DIALBACK_BURST_*), but the provider is
services.burst.provider.memory: the security probe reaches every burst route, and a
failover really runs (images built from MinIO), without an OpenStack.
"""

from __future__ import annotations

import logging

import uvicorn

from services.burst.app import build_engine, create_app
from services.burst.config import BurstSettings
from services.burst.provider.memory import MemoryProvider


def main() -> None:
    settings = BurstSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, engine=build_engine(settings, provider=MemoryProvider()))
    uvicorn.run(app, host=settings.burst_host, port=settings.burst_port, log_level="info")


if __name__ == "__main__":
    main()
