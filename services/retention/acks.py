"""Acknowledge Kafka messages strictly in offset order per partition.

Why: faust commits "the end of the first run of consecutive acked offsets".
Its head-of-queue check lets it commit over a single unacked message that
sits exactly at the committed offset (faust-streaming issue #606, open in
0.15.3). Messages of different groups share a partition and become durable
in any order, so acking them as they become durable could commit past a
message still buffered in memory; a crash would then lose it. Acking only
a prefix of done messages keeps faust's acked set contiguous from the
committed offset, where its arithmetic is right.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Hashable


class Pending:
    __slots__ = ("item", "done")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False


class OrderedAcks:
    def __init__(self, ack: Callable[[Any], Any]) -> None:
        self._ack = ack
        self._queues: dict[Hashable, deque[Pending]] = {}

    def track(self, tp: Hashable, item: Any) -> Pending:
        """Register a message in arrival (offset) order; returns its handle."""
        p = Pending(item)
        self._queues.setdefault(tp, deque()).append(p)
        return p

    def done(self, handles: list[Pending]) -> int:
        """Mark messages durable/handled and ack every done prefix; returns how many were acked."""
        for h in handles:
            h.done = True
        return self.drain()

    def drain(self) -> int:
        n = 0
        for q in self._queues.values():
            while q and q[0].done:
                self._ack(q.popleft().item)
                n += 1
        return n

    def forget(self, tps: set[Hashable]) -> None:
        """Partitions revoked: their unacked messages will be redelivered to the new owner."""
        for tp in tps:
            self._queues.pop(tp, None)

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())
