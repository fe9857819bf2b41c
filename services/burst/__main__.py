"""`python -m services.burst`: serve the burst API on DIALBACK_BURST_HOST:DIALBACK_BURST_PORT."""

import logging

import uvicorn

from services.burst.app import create_app
from services.burst.config import BurstSettings


def main() -> None:
    settings = BurstSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tls = settings.uvicorn_tls(settings.burst_host)
        app = create_app(settings)
    except ValueError as err:  # a placeholder admin token, a TLS pair that does not load
        raise SystemExit(f"burst: {err}") from None
    uvicorn.run(app, host=settings.burst_host, port=settings.burst_port, log_level="info", **tls)


if __name__ == "__main__":
    main()
