"""Generations of a tenant bucket's data key (`dialback keys rotate-data`, `dialback keys rekey`).

Keyring entries, each wrapped under the master key with its own name as AAD
(so an entry copied under another name, generation or bucket does not unwrap):

* ``<bucket>``: generation 1, the key every bucket had before data keys
  could rotate (created by `dialback tenant create` or on the first write);
* ``data:<bucket>:<n>:<created>``: generation ``n`` >= 2, added at UTC time
  ``created`` (``YYYYmmddTHHMMSSZ``; authenticated as part of the name).

Contract: new objects are sealed under the newest generation; every
generation still in the keyring opens what was sealed under it (the object
header names its generation). A generation is added under the keyring file
lock from a fresh read, so concurrent rotations add consecutive generations,
never two with one id. :meth:`DataKeys.current` re-checks the keyring file on
every call (one ``stat``), so a running service seals under a generation
another process added from its next write on. Generations older than the
newest are removed only by :meth:`DataKeys.retire`, which the re-key job calls
after a scan found no object sealed under them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterable

from shared.crypto.keyring import Keyring, KeyringError

PREFIX = "data:"


@dataclass(frozen=True)
class Generation:
    id: int
    entry: str  # keyring entry name
    created: str | None  # UTC, YYYYmmddTHHMMSSZ; None for generation 1 (not recorded before rotation existed)


def generation_entry(bucket: str, gen: int, created: str) -> str:
    return f"{PREFIX}{bucket}:{gen}:{created}"


def generations_in(names: Iterable[str], bucket: str) -> list[Generation]:
    """The data key generations of ``bucket`` among keyring entry ``names``, oldest first."""
    out, head = [], f"{PREFIX}{bucket}:"
    for name in names:
        if name == bucket:
            out.append(Generation(1, name, None))
        elif name.startswith(head):
            gen, _, created = name[len(head):].partition(":")
            if gen.isdigit() and int(gen) >= 2:
                out.append(Generation(int(gen), name, created or None))
    return sorted(out, key=lambda g: g.id)


class DataKeys:
    """The data key generations of every bucket of one Keyring (thread-safe)."""

    def __init__(self, ring: Keyring) -> None:
        self.ring = ring
        self._lock = threading.Lock()
        self._token: object = None
        self._names: tuple[str, ...] = ()
        self._index: dict[str, list[Generation]] = {}

    def generations(self, bucket: str, fresh: bool = True) -> list[Generation]:
        """``bucket``'s generations, oldest first; ``fresh`` re-checks the keyring file first."""
        with self._lock:
            if fresh or self._token is None:
                token, names = self.ring.entries(self._token)
                if names is not None:
                    self._token, self._names, self._index = token, names, {}
            gens = self._index.get(bucket)
            if gens is None:
                gens = self._index[bucket] = generations_in(self._names, bucket)
            return gens

    def current(self, bucket: str) -> tuple[int, bytes]:
        """(id, key) of ``bucket``'s newest generation; generation 1 is created when it has none."""
        gens = self.generations(bucket)
        if not gens:
            self.ring.add_entry(lambda names: None if generations_in(names, bucket) else bucket)
            gens = self.generations(bucket)
        newest = gens[-1]
        key = self.ring.find(newest.entry)
        if key is None:  # retired between the listing and now: cannot happen to the newest
            raise KeyringError(f"data key generation {newest.id} of bucket {bucket!r} vanished from the keyring; retry")
        return newest.id, key

    def key(self, bucket: str, gen: int) -> bytes | None:
        """The key of generation ``gen`` of ``bucket``, or None when the keyring does not hold it."""
        for fresh in (False, True):  # the cached index first: a read needs no stat unless the generation is new
            for g in self.generations(bucket, fresh=fresh):
                if g.id == gen:
                    return self.ring.find(g.entry)
        return None

    def rotate(self, bucket: str) -> Generation:
        """Add a new newest generation to ``bucket`` (confirmed on disk); returns it."""
        created = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

        def choose(names: Iterable[str]) -> str:
            gens = generations_in(names, bucket)
            return generation_entry(bucket, max([g.id for g in gens] + [1]) + 1, created)

        name = self.ring.add_entry(choose)
        return next(g for g in self.generations(bucket) if g.entry == name)

    def retire(self, bucket: str, keep: int) -> list[int]:
        """Remove every generation of ``bucket`` older than ``keep``; returns the ids removed.

        Objects sealed under a removed generation can never be opened again:
        call this only after a scan found none (shared.objectstore.rekey does).
        """
        old = [g for g in self.generations(bucket) if g.id < keep]
        if not any(g.id == keep for g in self.generations(bucket)):
            raise KeyringError(f"bucket {bucket!r} has no data key generation {keep}; nothing was retired")
        self.ring.remove_entries(g.entry for g in old)
        return [g.id for g in old]
