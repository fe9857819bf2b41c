"""Purge after the grace period: deletes the group's objects, meters the bytes, once."""

import pytest

from services.metering.aggregator import Aggregator, Policy
from shared.licences import LicenceBook
from services.metering.purge import PurgeJob
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import Feature, MemoryEmitter

from tests.services.metering.helpers import at

GRACE = 7 * 24 * 3600


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def setup_store():
    store = MemoryObjectStore()
    store.ensure_bucket("dialback-acme")
    for i in range(1203):
        store.put("dialback-acme", f"groups/g1/journal/{i:020d}.seg", b"x" * (i % 7 + 1))
    store.put("dialback-acme", "groups/g2/journal/1.seg", b"keep me")
    store.put("dialback-acme", "groups/g10/journal/1.seg", b"keep me too")
    return store


def book_with_off(group, at_time):
    book = LicenceBook()
    book.apply_record(None, book.switch("acme", Feature.PROTECTION, group, False, at_time).to_json())
    return book


def test_nothing_is_deleted_before_the_grace_period_ends():
    store, off = setup_store(), at(1).timestamp()
    clock = Clock(off + GRACE - 1)
    job = PurgeJob(store, book_with_off("g1", off), MemoryEmitter("/t"), GRACE, clock)
    assert job.run_once() == []
    assert len(list(store.list("dialback-acme"))) == 1205


def test_purge_deletes_the_group_and_meters_every_byte():
    store, off = setup_store(), at(1).timestamp()
    size = sum(o.size for o in store.list("dialback-acme", "groups/g1/"))
    emitter = MemoryEmitter("/t")
    job = PurgeJob(store, book_with_off("g1", off), emitter, GRACE, Clock(off + GRACE))
    (done,) = job.run_once()
    assert (done.group, done.objects, done.bytes) == ("g1", 1203, size)
    assert [o.key for o in store.list("dialback-acme")] == ["groups/g10/journal/1.seg", "groups/g2/journal/1.seg"]
    assert sum(e.quantity for e in emitter.events) == size
    assert {e.subject for e in emitter.events} == {"tenants/acme/groups/g1"}
    assert job.run_once() == []  # nothing left: nothing emitted again


def test_switching_back_on_within_grace_cancels_the_purge():
    store, off = setup_store(), at(1).timestamp()
    book = book_with_off("g1", off)
    book.apply_record(None, book.switch("acme", Feature.PROTECTION, "g1", True, off + 60).to_json())
    job = PurgeJob(store, book, MemoryEmitter("/t"), GRACE, Clock(off + 2 * GRACE))
    assert job.run_once() == [] and len(list(store.list("dialback-acme"))) == 1205


def test_a_crash_between_metering_and_deleting_is_metered_once_on_the_rerun():
    store, off = setup_store(), at(1).timestamp()
    size = sum(o.size for o in store.list("dialback-acme", "groups/g1/"))
    emitter = MemoryEmitter("/t")
    real_delete, calls = store.delete, [0]

    def flaky_delete(bucket, key):
        calls[0] += 1
        if calls[0] == 700:
            raise RuntimeError("killed")
        real_delete(bucket, key)

    store.delete = flaky_delete
    clock = Clock(off + GRACE)
    job = PurgeJob(store, book_with_off(None, off), emitter, GRACE, clock)
    with pytest.raises(RuntimeError):
        job.run_once()
    clock.t += 2 * 3600  # the rerun happens hours later
    job.run_once()
    assert list(store.list("dialback-acme")) == []
    agg = Aggregator(Policy(wall_clock=False, lateness=0))
    out = agg.process([(None, e.to_json(), "w") for e in emitter.events], 0, "1")
    assert out.duplicates > 0  # the rerun re-sent the chunk it had not finished, with the same id
    counted = sum(b.quantity for b in agg.buckets.values())
    assert counted == size + len(b"keep me") + len(b"keep me too")
