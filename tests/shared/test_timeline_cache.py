"""read_timeline with a TimelineCache: only entries not seen before are fetched; listing decides what exists."""

from __future__ import annotations

from shared import keys
from shared.journal import Bookmark, TimelineCache, TimelineEntry, put_timeline_entry, read_timeline
from shared.objectstore.memory import MemoryObjectStore

B, G = "dialback-t1", "g1"


class CountingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def get(self, bucket: str, key: str) -> bytes:
        self.gets.append(key)
        return super().get(bucket, key)


def _entry(first: int, last: int, bookmarks=()) -> TimelineEntry:
    return TimelineEntry(first, last, first * 10, last * 10, keys.segment_key(G, first, last), 100 + last, bookmarks)


def _store(n: int) -> CountingStore:
    s = CountingStore()
    s.ensure_bucket(B)
    for k in range(n):
        put_timeline_entry(s, B, G, _entry(10 * k + 1, 10 * k + 10))
    return s


def test_second_read_fetches_only_new_entries():
    s, cache = _store(5), TimelineCache()
    first = read_timeline(s, B, G, cache=cache)
    assert [e.first_seq for e in first] == [1, 11, 21, 31, 41]
    assert len(s.gets) == 5
    s.gets.clear()
    put_timeline_entry(s, B, G, _entry(51, 60, (Bookmark("b", 55, 550),)))
    second = read_timeline(s, B, G, cache=cache)
    assert second[:5] == first and second[5] == _entry(51, 60, (Bookmark("b", 55, 550),))
    assert s.gets == [keys.timeline_key(G, 51, 60)]


def test_entry_removed_by_gc_is_not_returned_from_the_cache():
    s, cache = _store(3), TimelineCache()
    read_timeline(s, B, G, cache=cache)
    s.delete(B, keys.timeline_key(G, 1, 10))
    assert [e.first_seq for e in read_timeline(s, B, G, cache=cache)] == [11, 21]


def test_rewritten_entry_of_another_size_is_read_again():
    s, cache = _store(2), TimelineCache()
    read_timeline(s, B, G, cache=cache)
    changed = TimelineEntry(11, 20, 110, 200, "elsewhere/segment-key-of-another-length", 7)
    put_timeline_entry(s, B, G, changed)
    s.gets.clear()
    assert read_timeline(s, B, G, cache=cache)[1] == changed
    assert s.gets == [keys.timeline_key(G, 11, 20)]


def test_without_a_cache_every_entry_is_fetched_each_time():
    s = _store(3)
    assert read_timeline(s, B, G) == read_timeline(s, B, G)
    assert len(s.gets) == 6


def test_cache_is_bounded():
    s, cache = _store(4), TimelineCache(max_entries=2)
    read_timeline(s, B, G, cache=cache)
    s.gets.clear()
    assert len(read_timeline(s, B, G, cache=cache)) == 4
    assert len(s.gets) >= 2  # evicted entries are read again
