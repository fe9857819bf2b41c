"""TimelineListing: after one full listing, only what changed at either end is listed; it equals a full listing."""

from __future__ import annotations

import random
import uuid

import pytest

from services.recovery.listing import TimelineListing
from services.recovery.planner import load_group
from shared import keys
from shared.journal import TimelineEntry, list_timeline, put_timeline_entry
from shared.objectstore.memory import MemoryObjectStore

B, G = "dialback-t1", "g1"


class CountingStore(MemoryObjectStore):
    """Counts listings and the keys they returned (the cost the listing saves)."""

    def __init__(self) -> None:
        super().__init__()
        self.listed_keys = 0
        self.lists = 0

    def list(self, bucket, prefix="", start_after=""):
        self.lists += 1
        for info in super().list(bucket, prefix, start_after):
            self.listed_keys += 1
            yield info


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _put(s, first: int, last: int) -> None:
    put_timeline_entry(s, B, G, TimelineEntry(first, last, first * 10, last * 10,
                                              keys.segment_key(G, first, last), 100))


def _store(n: int) -> CountingStore:
    s = CountingStore()
    s.ensure_bucket(B)
    for k in range(n):
        _put(s, 10 * k + 1, 10 * k + 10)
    return s


def _firsts(infos) -> list[int]:
    return [keys.parse_range(i.key)[0] for i in infos]


def test_after_one_full_listing_only_new_entries_are_listed():
    s, listing = _store(50), TimelineListing(clock=Clock())
    assert len(listing.infos(s, B, G)) == 50
    s.listed_keys = 0
    _put(s, 501, 510)
    _put(s, 511, 520)
    infos = listing.infos(s, B, G)
    assert _firsts(infos) == list(range(1, 521, 10))
    assert s.listed_keys == 2 and listing.full_listings == 1
    s.listed_keys = 0
    assert listing.infos(s, B, G) == infos and s.listed_keys == 0  # nothing new: nothing listed


def test_entries_removed_by_gc_are_never_answered():
    s, listing = _store(5), TimelineListing(clock=Clock())
    listing.infos(s, B, G)
    s.delete(B, keys.timeline_key(G, 1, 10))
    s.delete(B, keys.timeline_key(G, 11, 20))
    assert _firsts(listing.infos(s, B, G)) == [21, 31, 41]
    assert listing.full_listings == 2


def test_a_purged_bucket_lists_empty():
    s, listing = _store(3), TimelineListing(clock=Clock())
    listing.infos(s, B, G)
    for i in list(s.list(B)):
        s.delete(B, i.key)
    assert listing.infos(s, B, G) == []


def test_an_entry_written_behind_the_newest_key_is_seen_at_the_next_refresh():
    clock = Clock()
    s, listing = _store(3), TimelineListing(refresh_s=30.0, clock=clock)
    listing.infos(s, B, G)
    _put(s, 11, 15)  # a restarted retention's overlapping entry: sorts before 21-30
    assert _firsts(listing.infos(s, B, G)) == [1, 11, 21]
    clock.t = 30.0
    assert _firsts(listing.infos(s, B, G)) == [1, 11, 11, 21]
    assert listing.full_listings == 2


def test_groups_and_buckets_are_kept_apart():
    s, listing = _store(2), TimelineListing(clock=Clock())
    s.ensure_bucket("dialback-t2")
    put_timeline_entry(s, "dialback-t2", G, TimelineEntry(1, 5, 10, 50, keys.segment_key(G, 1, 5), 1))
    assert _firsts(listing.infos(s, B, G)) == [1, 11]
    assert _firsts(listing.infos(s, "dialback-t2", G)) == [1]
    assert listing.infos(s, B, "g2") == []


def _random_appends_and_gc(s, bucket: str, rounds: int) -> TimelineListing:
    rng, listing, nxt = random.Random(7), TimelineListing(refresh_s=1e9, clock=Clock()), 1
    for _ in range(rounds):
        op = rng.random()
        if op < 0.6:
            n = rng.randint(1, 20)
            put_timeline_entry(s, bucket, G, TimelineEntry(nxt, nxt + n - 1, nxt, nxt + n - 1,
                                                           keys.segment_key(G, nxt, nxt + n - 1), 100))
            nxt += n
        elif op < 0.75:  # GC: the oldest entries go, the newest always stays
            infos = list_timeline(s, bucket, G)
            for i in infos[:rng.randint(0, max(0, len(infos) - 1))]:
                s.delete(bucket, i.key)
        assert listing.infos(s, bucket, G) == list_timeline(s, bucket, G)
    return listing


def test_random_appends_and_gc_always_equal_a_full_listing():
    listing = _random_appends_and_gc(_store(0), B, 300)
    assert listing.full_listings < 150  # most calls were incremental


@pytest.mark.integration
def test_random_appends_and_gc_on_minio(minio_store):
    bucket = f"listing-{uuid.uuid4().hex[:12]}"
    minio_store.ensure_bucket(bucket)
    listing = _random_appends_and_gc(minio_store, bucket, 120)
    assert listing.full_listings < 60


def test_load_group_with_a_listing_equals_one_without():
    s = _store(4)
    s.put(B, keys.manifest_key(G), b'{"group": "g1", "volumes": {"d0": 4096}}')
    listing = TimelineListing(clock=Clock())
    load_group(s, B, G, listing=listing)
    _put(s, 41, 50)
    with_listing, full = load_group(s, B, G, listing=listing), load_group(s, B, G)
    assert with_listing.entries == full.entries and full.entries[-1].last_seq == 50
