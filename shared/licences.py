"""Licences: which services are switched on, per tenant or per protection group, by the hour.

A licence record is the full history of one switch, keyed
``<tenant>|<feature>|<group or *>`` in the compacted licensing topic, so the
latest record alone answers for any past hour::

    {"tenant": "acme", "feature": "protection", "group": "g1" | null,
     "changes": [{"enabled": true, "at": 1764036000.0}, ...]}

Hour rule (one-hour granularity, charges follow it):

* switched **on** at any moment of hour H: on (and charged) from H;
* switched **off** during hour H: still on for the rest of H, off from H+1.

A later change overrides what earlier changes said about the same or later
hours (on at 10:20 after off at 10:10 leaves 11:00 on). No record means on,
so services work before anyone touched a switch; only explicit licences
produce licence-hour lines. Tenant scope and group scope must both be on.

Metering writes these records (only a provider credential may switch them);
the services that do the work read them through :class:`LicenceWatch` and
refuse what a switched-off licence does not cover, at once (the hour rule
above is for charges): ingest refuses batches of a group whose protection is
off, recovery refuses instant-access exports, burst refuses operations. This
module is that shared reader, so no service imports metering.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from shared.tenancy import LICENSING_TOPIC, check_tenant, check_volume
from shared.usage import Feature

HOUR = 3600
log = logging.getLogger(__name__)


def licence_key(tenant: str, feature: Feature, group: str | None) -> str:
    return f"{tenant}|{feature.value}|{group or '*'}"


@dataclass
class Licence:
    tenant: str
    feature: Feature
    group: str | None
    changes: list[tuple[float, bool]] = field(default_factory=list)  # (at, enabled), time order
    _eff: list[tuple[int, bool]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        eff: list[tuple[int, bool]] = []
        for at, enabled in sorted(self.changes):
            hour = int(at // HOUR) + (0 if enabled else 1)
            while eff and eff[-1][0] >= hour:
                eff.pop()
            eff.append((hour, enabled))
        self._eff = eff

    @property
    def key(self) -> str:
        return licence_key(self.tenant, self.feature, self.group)

    def add(self, at: float, enabled: bool) -> None:
        self.changes.append((at, enabled))
        self._rebuild()

    def on_at_hour(self, hour: int) -> bool | None:
        """True/False for an hour index; None if no change takes effect by then."""
        state = None
        for h, enabled in self._eff:
            if h > hour:
                break
            state = enabled
        return state

    @property
    def enabled_now(self) -> bool:
        return sorted(self.changes)[-1][1] if self.changes else True

    @property
    def switched_off_at(self) -> float | None:
        """When the switch was last turned off, if it is off now."""
        if not self.changes or self.enabled_now:
            return None
        return sorted(self.changes)[-1][0]

    def to_json(self) -> bytes:
        return json.dumps({
            "tenant": self.tenant, "feature": self.feature.value, "group": self.group,
            "changes": [{"at": at, "enabled": en} for at, en in sorted(self.changes)],
        }).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Licence":
        d = json.loads(raw)
        return cls(d["tenant"], Feature(d["feature"]), d.get("group"),
                   [(float(c["at"]), bool(c["enabled"])) for c in d["changes"]])

    def as_dict(self) -> dict:
        return {"tenant": self.tenant, "feature": self.feature.value, "group": self.group,
                "enabled": self.enabled_now,
                "changes": [{"at": at, "enabled": en} for at, en in sorted(self.changes)]}


class LicenceBook:
    """All licences, in memory; rebuilt by replaying the compacted licensing topic."""

    def __init__(self) -> None:
        self.licences: dict[str, Licence] = {}

    def apply_record(self, key: bytes | str | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self.licences.pop(key.decode() if isinstance(key, bytes) else key, None)
            return
        lic = Licence.from_json(value)
        self.licences[lic.key] = lic

    def switch(self, tenant: str, feature: Feature, group: str | None, enabled: bool, at: float) -> Licence:
        """The licence after the change (not yet stored: the caller publishes it)."""
        check_tenant(tenant)
        if group is not None:
            check_volume(group)
        old = self.licences.get(licence_key(tenant, feature, group))
        lic = Licence(tenant, feature, group, list(old.changes) if old else [])
        lic.add(at, enabled)
        return lic

    def enabled_now(self, tenant: str, feature: Feature, group: str | None = None) -> bool:
        """On right now: the tenant's switch and (for a group) the group's switch, no record = on."""
        for g in (None, group) if group else (None,):
            lic = self.licences.get(licence_key(tenant, feature, g))
            if lic is not None and not lic.enabled_now:
                return False
        return True

    def get(self, tenant: str, feature: Feature, group: str | None) -> Licence | None:
        return self.licences.get(licence_key(tenant, feature, group))

    def licensed(self, tenant: str, feature: Feature, group: str | None, hour: int) -> bool:
        for g in (None, group) if group else (None,):
            lic = self.licences.get(licence_key(tenant, feature, g))
            if lic is not None and lic.on_at_hour(hour) is False:
                return False
        return True

    def for_tenant(self, tenant: str) -> list[Licence]:
        return [lic for lic in self.licences.values() if lic.tenant == tenant]

    def charged_hours(self, first_hour: int, end_hour: int):
        """(licence, hour) for each explicit licence on during each hour in [first_hour, end_hour)."""
        for lic in list(self.licences.values()):
            if not lic._eff:
                continue
            for hour in range(max(first_hour, lic._eff[0][0]), end_hour):
                if lic.on_at_hour(hour) and (lic.group is None or
                                             self.licensed(lic.tenant, lic.feature, lic.group, hour)):
                    yield lic, hour


class LicenceView(Protocol):
    def enabled(self, tenant: str, feature: Feature, group: str | None = None) -> bool: ...


class AllOn:
    """No licence records at all (a service run without Kafka, unit tests): everything is on."""

    def enabled(self, tenant: str, feature: Feature, group: str | None = None) -> bool:
        return True


class BookView:
    """A :class:`LicenceBook` in this process (tests, metering itself) as a :class:`LicenceView`."""

    def __init__(self, book: LicenceBook) -> None:
        self.book = book

    def enabled(self, tenant: str, feature: Feature, group: str | None = None) -> bool:
        return self.book.enabled_now(tenant, feature, group)


class LicenceWatch:
    """Follows the compacted licensing topic in a background thread.

    Fails open: until the topic has been read to its end once (Kafka down,
    metering never started), every licence counts as on and a warning is
    logged, because refusing protection on an outage would lose the customer
    their RPO for the provider's fault. Once read, a switch reaches this view
    within ``poll_s`` of metering publishing it.
    """

    def __init__(self, bootstrap: str, topic: str = LICENSING_TOPIC, poll_s: float = 0.5) -> None:
        self.bootstrap, self.topic, self.poll_s = bootstrap, topic, poll_s
        self.book = LicenceBook()
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "LicenceWatch":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="licence-watch", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        from shared.bus.kafka import ensure_topics
        from shared.bus.tail import Tail, replay

        compacted = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
        while not self._stop.is_set():
            try:
                ensure_topics(self.bootstrap, [self.topic], partitions=1, config=compacted)
                tail = Tail(self.bootstrap, self.topic, self.book.apply_record)
                try:
                    replay(self.bootstrap, self.topic, self.book.apply_record)
                    self.caught_up.set()
                    while not self._stop.is_set():
                        tail.poll(self.poll_s)
                finally:
                    tail.close()
            except Exception as err:  # noqa: BLE001 - logged; the watch retries and stays open meanwhile
                log.warning("licences unknown (cannot read %s at %s: %s); treating every licence as on until "
                            "it can be read", self.topic, self.bootstrap, err)
                self._stop.wait(5)

    def enabled(self, tenant: str, feature: Feature, group: str | None = None) -> bool:
        self.start()
        if not self.caught_up.is_set():
            return True
        return self.book.enabled_now(tenant, feature, group)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)  # a daemon thread: a blocked Kafka call must not hold up a shutdown


def _switch_hint(tenant: str, feature: Feature, group: str | None) -> str:
    g = f" --group {group}" if group else ""
    return f"ask your provider to switch it on (`dialback license on {tenant} {feature.value}{g}`, provider credential)"


def refused_protection(tenant: str, group: str) -> str:
    return (f"protection is switched off for group {group!r} of tenant {tenant!r}: ingest refuses new batches "
            f"(the agent keeps them in its spool and ships them once protection is on again); "
            f"{_switch_hint(tenant, Feature.PROTECTION, group)}")


def refused_feature(tenant: str, feature: Feature, group: str | None = None) -> str:
    what = {Feature.INSTANT_ACCESS: "instant access (exports)", Feature.BURST: "burst (failover, DR tests)"}
    scope = f"group {group!r} of tenant {tenant!r}" if group else f"tenant {tenant!r}"
    return (f"{what.get(feature, feature.value)} is switched off for {scope}; {_switch_hint(tenant, feature, group)}")
