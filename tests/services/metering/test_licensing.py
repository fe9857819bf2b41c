"""Licences: the one-hour rule, enforcement in the aggregator, and licence-hour lines."""

from services.metering.aggregator import Aggregator, Policy
from shared.licences import Licence, LicenceBook
from shared.usage import Feature, Meter

from tests.services.metering.helpers import at, ev

HOUR = 3600


def h(n: float) -> int:
    return int(at(n).timestamp() // HOUR)


def test_hour_rule_on_charges_the_current_hour_off_stops_from_the_next():
    lic = Licence("acme", Feature.PROTECTION, "g1")
    lic.add(at(10, 20).timestamp(), True)
    assert lic.on_at_hour(h(9)) is None and lic.on_at_hour(h(10)) is True
    lic.add(at(12, 40).timestamp(), False)
    assert lic.on_at_hour(h(12)) is True and lic.on_at_hour(h(13)) is False
    lic.add(at(12, 50).timestamp(), True)  # back on in the same hour: never off
    assert lic.on_at_hour(h(13)) is True and lic.enabled_now
    back = Licence.from_json(lic.to_json())
    assert [back.on_at_hour(h(x)) for x in range(9, 15)] == [lic.on_at_hour(h(x)) for x in range(9, 15)]


def test_switching_protection_off_stops_its_meters_from_the_next_hour():
    book = LicenceBook()
    book.apply_record(None, book.switch("acme", Feature.PROTECTION, "g1", False, at(1, 30).timestamp()).to_json())
    agg = Aggregator(Policy(wall_clock=False, lateness=0), book)
    recs = [ev(q=5, at=at(1, 45), id="same-hour"), ev(q=6, at=at(2, 1), id="next-hour"),
            ev(q=7, at=at(2, 1), id="other-group", group="g2"),
            ev(meter=Meter.RECOVERY_IMAGE_BYTES, q=8, at=at(2, 2), id="unlicensed-meter")]
    out = agg.process([(None, e.to_json(), "w") for e in recs], 0, "1")
    assert [r.reason for r in out.rejects] == ["not licensed"] and out.accepted == 3


def test_tenant_scope_off_covers_every_group():
    book = LicenceBook()
    book.apply_record(None, book.switch("acme", Feature.BURST, None, False, at(0, 10).timestamp()).to_json())
    assert not book.licensed("acme", Feature.BURST, "g7", h(1))
    assert book.licensed("acme", Feature.BURST, "g7", h(0))
    assert book.licensed("acme", Feature.PROTECTION, "g7", h(1))
    assert book.licensed("globex", Feature.BURST, None, h(1))


def test_licence_hours_are_charged_per_started_hour():
    book = LicenceBook()
    lic = book.switch("acme", Feature.INSTANT_ACCESS, "g1", True, at(1, 50).timestamp())
    book.apply_record(None, lic.to_json())
    lic = book.switch("acme", Feature.INSTANT_ACCESS, "g1", False, at(3, 5).timestamp())
    book.apply_record(None, lic.to_json())
    agg = Aggregator(Policy(wall_clock=False, lateness=0), book)
    agg.process([(None, ev(q=1, at=at(0, 5), id="a").to_json(), "w")], 0, "1")
    out = agg.process([(None, ev(q=1, at=at(6), id="b").to_json(), "w")], 0, "2")
    charged = [(ln.hour, ln.quantity, ln.meter) for ln in out.lines if ln.type == "licence"]
    # on 01:50, off 03:05: hours 1, 2 and 3 are charged, one hour each
    assert charged == [(h(x), 1, "license.instant_access.hours") for x in (1, 2, 3)]


def test_enabled_now_is_immediate_and_needs_tenant_and_group_on():
    """What services enforce: the switch as it is now (the hour rule above is for charges)."""
    book = LicenceBook()
    assert book.enabled_now("acme", Feature.PROTECTION, "g1")  # no record: on
    for group, enabled, t in ((None, False, 10.0), ("g1", True, 20.0)):
        lic = book.switch("acme", Feature.PROTECTION, group, enabled, at(0).timestamp() + t)
        book.apply_record(lic.key, lic.to_json())
    assert not book.enabled_now("acme", Feature.PROTECTION, "g1")  # the tenant's switch is off
    assert not book.enabled_now("acme", Feature.PROTECTION)
    lic = book.switch("acme", Feature.PROTECTION, None, True, at(0).timestamp() + 30)
    book.apply_record(lic.key, lic.to_json())
    assert book.enabled_now("acme", Feature.PROTECTION, "g1")
    assert book.enabled_now("globex", Feature.PROTECTION, "g1")
