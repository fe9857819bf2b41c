"""``python -m services.metering``: run the metering service (settings from DIALBACK_* variables)."""

import logging

from services.metering.config import MeteringSettings
from services.metering.service import MeteringService


def main() -> None:
    s = MeteringSettings()
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    MeteringService(s).serve()


if __name__ == "__main__":
    main()
