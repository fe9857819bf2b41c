"""`python -m services.burst`: serve the burst API on DIALBACK_BURST_HOST:DIALBACK_BURST_PORT."""

import logging

import uvicorn

from services.burst.app import create_app
from services.burst.config import BurstSettings


def main() -> None:
    settings = BurstSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.burst_host, port=settings.burst_port, log_level="info")


if __name__ == "__main__":
    main()
