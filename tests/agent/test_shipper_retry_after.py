"""A 503 with Retry-After (ingest over its in-flight caps) is honoured: no retry sooner, one warning,
the spool kept until ingest takes the writes. Over real HTTP against the fake ingest."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.agent.conftest import wait_for
from tests.agent.test_shipper import caught_up, start
from tests.agent.test_group import replay_matches


def test_503_with_retry_after_waits_at_least_that_long(tmp_path, ingest, caplog):
    h = start(tmp_path, ingest.url)  # backoff cap 0.5 s: without Retry-After it would retry ~2x a second
    try:
        g = h.group
        wait_for(lambda: g.state.initial_sync_complete and caught_up(g), what="sync shipped")
        ingest.ingest.retry_after, ingest.ingest.fail_status = "2", 503
        with caplog.at_level(logging.DEBUG, logger="agent.shipper"):
            g.write("disk0", 0, b"while ingest is full" * 100)
            time.sleep(4.5)
            tries = list(ingest.ingest.failed_at)
            assert g.state.acked_through < g.spool.last_seq, "nothing acknowledged, the spool keeps the write"
            ingest.ingest.fail_status = None
            wait_for(lambda: caught_up(g), what="shipped once ingest had room")
        assert 2 <= len(tries) <= 3, tries
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        assert min(gaps) >= 1.9, f"retried sooner than Retry-After: {gaps}"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "HTTP 503" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert replay_matches(tmp_path, g, ingest.ingest.records["grp1"])
    finally:
        h.stop()


@pytest.mark.parametrize("header,seconds", [
    (None, 0.0), ("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", 0.0), ("86400", 300.0),
    ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
])
def test_retry_after_values(header, seconds):
    from agent.shipper import MAX_RETRY_AFTER, retry_after

    assert MAX_RETRY_AFTER == 300.0
    resp = httpx.Response(503, headers={"Retry-After": header} if header else {})
    assert retry_after(resp) == seconds
