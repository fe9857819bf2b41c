"""A group's timeline keys, listed incrementally for ``points`` (docs/recovery.md, "Points").

Listing a timeline costs O(entries) per call (the store pages 1,000 keys per
request, and parsing the listing is most of recovery's CPU while a client
polls ``points``). Timeline keys sort by first sequence and retention writes
each group's entries in sequence order, so between two calls the timeline
only grows at its end - or loses its beginning to GC (gc.py removes entries
whose records all lie at or before the floor: the oldest keys). Hence per
call, after one full listing:

* one existence check of the oldest key known: gone means GC (or a purge)
  ran, and the timeline is listed in full again;
* one listing after the newest key known: the entries added since.

A full listing is also taken every ``refresh_s`` seconds, so anything else
(an entry rewritten at its key, an overlapping entry a restarted retention
wrote behind the newest key) is seen within that time. Plans never use this:
they list in full after taking their lease (shared.leases), so what they
build on is exactly what GC spares.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import cachetools

from shared.journal import list_timeline
from shared.objectstore import ObjectInfo, ObjectStore


class TimelineListing:
    """Per (bucket, group): the timeline keys listed so far; bounded, least recently used out."""

    def __init__(self, refresh_s: float = 30.0, max_groups: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.clock = clock
        self._known: cachetools.LRUCache = cachetools.LRUCache(max_groups)  # (bucket, group) -> (listed_at, infos)
        self._lock = threading.Lock()
        self.full_listings = 0  # for tests and the curious

    def infos(self, store: ObjectStore, bucket: str, group: str) -> list[ObjectInfo]:
        """The group's timeline entry objects in key order, as of now."""
        with self._lock:
            known = self._known.get((bucket, group))
        now = self.clock()
        if known is not None:
            listed_at, infos = known
            if infos and now - listed_at < self.refresh_s and store.exists(bucket, infos[0].key):
                new = list_timeline(store, bucket, group, start_after=infos[-1].key)
                if new:
                    infos = infos + new
                    with self._lock:
                        self._known[(bucket, group)] = (listed_at, infos)
                return infos
        infos = list_timeline(store, bucket, group)
        with self._lock:
            self.full_listings += 1
            self._known[(bucket, group)] = (now, infos)
        return infos
