"""Where ingest publishes: the writes log and the control log (interfaces + adapters)."""

from services.ingest.bus.base import BusUnavailable, ControlLog, WritesLog, control_key

__all__ = ["BusUnavailable", "ControlLog", "WritesLog", "control_key"]
