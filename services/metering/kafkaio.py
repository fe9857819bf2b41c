"""Kafka helpers metering uses; they live in :mod:`shared.bus.tail` (other services follow topics too)."""

from shared.bus.tail import Tail, replay  # noqa: F401 - re-exported
