"""``python -m services.ingest``: serve ingest under uvicorn on the configured loopback port."""

from __future__ import annotations

import logging

import uvicorn

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared.allocator import tune_allocator


def main(settings: IngestSettings | None = None) -> None:
    settings = settings or IngestSettings()
    tune_allocator()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httptools and uvloop (both dependencies): request bodies are megabytes, and h11's pure-Python
    # parsing of them cost 0.3-0.5 ms of CPU per MB more (docs/ingest.md, "Server").
    tls = settings.uvicorn_tls_or_exit(settings.ingest_host)  # HTTPS when DIALBACK_INGEST_TLS_* are set
    uvicorn.run(create_app(settings), host=settings.ingest_host, port=settings.ingest_port,
                log_level=settings.log_level.lower(), http="httptools", loop="uvloop", **tls)


if __name__ == "__main__":
    main()
