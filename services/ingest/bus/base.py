"""The two logs ingest writes to, as narrow interfaces.

Both are blocking; the service calls them from a worker thread.

:class:`WritesLog` — ``dialback.<tenant>.writes``:

* ``ensure(tenant)`` creates the tenant's writes topic if missing (idempotent).
* ``publish`` (``publish_many``: several, in order) returns only after the log acknowledged the batch durably
  (Kafka: idempotent producer, acks=all). Batches of one group are appended in
  call order and keyed by group, so one group stays in one partition, in order.
* Record values are sealed under the tenant's bus key once :meth:`WritesLog.use_seal` gave
  a :class:`~shared.crypto.bus.BusSeal` with a keyring (docs/encryption.md, "Kafka"); the
  group key and the ``first_seq``/``last_seq`` headers stay readable for routing.
* On any failure it raises :class:`~shared.bus.kafka.BusUnavailable`; the
  caller must then treat the batch as NOT acknowledged (it may or may not be
  in the log: a resend can land twice, which consumers tolerate).

:class:`ControlLog` — ``dialback.<tenant>.control`` (compacted):

* ``append`` of a JSON event keyed ``group/<group>``, same guarantees as
  ``publish``.
* ``replay`` returns the tenant's events from the beginning up to the end as
  of the call, in append order; a tenant with no topic yet has no events.
  Because the topic is compacted, only the latest event per key is
  guaranteed to survive: every event must therefore carry the whole state
  of its group (see services.ingest.state).
* ``follow`` returns the events appended since the previous ``follow`` (the
  first call: since ``replay``'s end), so ingest sees what others (retention's
  GroupBroken/GroupRepaired) append. Best effort: it may return nothing yet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from shared.bus.kafka import BusUnavailable
from shared.crypto.bus import BusSeal

__all__ = ["BusUnavailable", "ControlLog", "WritesLog", "control_key"]


def control_key(group: str) -> bytes:
    return f"group/{group}".encode()


class WritesLog(ABC):
    seal: BusSeal = BusSeal(None)  # plaintext until use_seal

    def use_seal(self, seal: BusSeal) -> None:
        """Seal every record published from now on with ``seal`` (one AES-GCM call per record)."""
        self.seal = seal

    def record(self, tenant: str, group: str, batch: bytes, first_seq: int, last_seq: int) -> tuple[bytes, list]:
        """(value, headers) of the record that carries ``batch``: sealed when a seal is in use."""
        return self.seal.seal(tenant, group, first_seq, last_seq, batch)

    def close(self) -> None:
        """Release connections; nothing is pending (every publish already waited)."""

    @abstractmethod
    def ensure(self, tenant: str) -> None: ...

    @abstractmethod
    def publish(self, tenant: str, group: str, batch: bytes, first_seq: int, last_seq: int) -> None: ...

    def publish_many(self, tenant: str, group: str, batches: list[tuple[bytes, int, int]]) -> None:
        """``publish`` for several (batch, first_seq, last_seq) of one group, in order.

        Returns only after every one is acknowledged; on failure some prefix may be in the log
        (same rule as ``publish``: the caller treats none of them as acknowledged).
        Adapters may override to keep them all in flight at once.
        """
        for batch, first, last in batches:
            self.publish(tenant, group, batch, first, last)


class ControlLog(ABC):
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def ensure(self, tenant: str) -> None: ...

    @abstractmethod
    def append(self, tenant: str, group: str, event: dict) -> None: ...

    @abstractmethod
    def replay(self, tenant: str) -> list[dict]: ...

    def follow(self, tenant: str) -> list[dict]:
        """Events appended since the last follow (or replay); adapters without it see none."""
        return []
