"""``python -m services.analyzer``: serve the analyzer under uvicorn on the configured loopback port."""

from __future__ import annotations

import logging

import uvicorn

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings


def main(settings: AnalyzerSettings | None = None) -> None:
    settings = settings or AnalyzerSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tls = settings.uvicorn_tls_or_exit(settings.analyzer_host)
    uvicorn.run(create_app(settings), host=settings.analyzer_host, port=settings.analyzer_port,
                log_level=settings.log_level.lower(), **tls)


if __name__ == "__main__":
    main()
