"""Which tenants' topics retention consumes.

faust-streaming 0.15.3 cannot subscribe by pattern (its aiokafka driver
passes only topic names; faust-streaming issue #62), so retention reads the
tenants file and subscribes to the ``writes`` and ``control`` topics of every
tenant whose topics exist. The set is re-checked periodically; when it
changes the worker restarts itself to resubscribe (see ``__main__``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from shared.auth import TenantsFileError, read_tenants
from shared.bus.kafka import BusUnavailable, admin
from shared.tenancy import control_topic, writes_topic

log = logging.getLogger(__name__)


def discover(bootstrap: str, tenants_file: Path, timeout: float = 10.0) -> tuple[list[str], list[str]]:
    """(writes topics, control topics) of known tenants whose topics exist in Kafka."""
    try:
        tenants = sorted(read_tenants(tenants_file))
    except TenantsFileError as err:
        log.error("%s", err)
        tenants = []
    try:
        existing = set(admin(bootstrap).list_topics(timeout=timeout).topics)
    except Exception as err:  # confluent-kafka raises KafkaException; keep the worker alive
        raise BusUnavailable(f"cannot list Kafka topics at {bootstrap}: {err}") from err
    writes = [writes_topic(t) for t in tenants if writes_topic(t) in existing]
    control = [control_topic(t) for t in tenants if control_topic(t) in existing]
    return writes, control
