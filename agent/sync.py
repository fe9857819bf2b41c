"""Initial sync and overflow resync, one background thread per group.

Work is done in small steps (one chunk at a time, each under the group
lock) so writes interleave freely: a write during the sync simply gets a
later sequence than the chunk it touches, or the chunk is read after it.
Steps pause while the spool holds more than ``pace_bytes`` not yet
acknowledged, so a sync never floods the spool.

A restart during the initial sync starts it again from offset 0 (chunks
already spooled are sent again; later sequences win, so this is only
slower, never wrong).
"""

from __future__ import annotations

import logging
import threading

from agent.errors import BookmarkError
from agent.group import INITIAL_SYNC_BOOKMARK, Group

log = logging.getLogger(__name__)

ZERO_SPAN = 1 << 30  # longest ZEROES record the sync emits for a hole


class Syncer:
    def __init__(self, group: Group, pace_bytes: int, idle_wait: float = 0.05):
        self.group = group
        self.pace_bytes = pace_bytes
        self.idle_wait = idle_wait
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sync-{group.name}", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.step()
            except Exception as err:  # keep protecting; the alarm tells the operator
                log.exception("group %s: sync step failed", self.group.name)
                self.error = str(err)
                self.group.alarms["sync_failed"] = f"sync failed: {err}; it is retried every few seconds"
                self.stop.wait(5)
                continue
            if not busy:
                self.stop.wait(self.idle_wait)

    def step(self) -> bool:
        """Do one unit of sync work; False when there is nothing to do now."""
        g = self.group
        if g.overflow:
            return g.leave_overflow_if_drained()
        if g.spool.pending()[1] > self.pace_bytes:
            return False
        for vol, dmap in g.dirty.items():
            index = dmap.next_dirty()
            if index is not None:
                return g.resync_chunk(vol, index)
        if g.state.needs_resync:
            g.resync_finished()
            return True
        if g.state.initial_sync_complete or not g.registered.is_set():
            return False
        gen = g.sync_generation  # a re-protection (Group.renumber) in between restarts the sync
        for vol in sorted(g.disks):
            done = g.sync_progress[vol]
            if done < g.disks[vol].size:
                n = g.copy_region(vol, done, ZERO_SPAN)
                g.advance_sync(vol, gen, done + n)
                return n > 0
        try:
            seq, _ = g.bookmark(INITIAL_SYNC_BOOKMARK, internal=True, generation=gen)
        except BookmarkError:
            # re-protected meanwhile (the copy starts again at offset 0), or the spool
            # overflowed meanwhile (the next steps resync, then complete the sync)
            return True
        g.alarms.pop("sync_failed", None)
        log.info("group %s: initial sync complete at sequence %d", g.name, seq)
        return True

    def run_until_idle(self, limit: int = 1_000_000) -> int:
        """Run steps in the caller's thread until idle (tests); returns steps done."""
        n = 0
        while n < limit and self.step():
            n += 1
        return n
