"""Property: whatever windows of a group's sequence an agent (re)sends, in whatever
order, what ingest produces is exactly 1..acked_through, once each, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.batches import plan_batch
from services.ingest.errors import SequenceGap
from services.ingest.state import GroupState
from shared.frames import decode_batch

from .ingest_helpers import batch

windows = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 12)), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(windows)
def test_produced_stream_is_gap_free_and_duplicate_free(ws):
    gs = GroupState("g1", {"disk0": 1 << 30})
    produced: list[int] = []
    for start, length in ws:
        body = batch(start, start + length, size=64)
        try:
            plan = plan_batch(body, gs)
        except SequenceGap as gap:
            assert start > gs.acked_through + 1 and gap.expected == gs.acked_through + 1
            continue
        if plan.data is None:
            assert start + length <= gs.acked_through
            continue
        seqs = [r.sequence for r in decode_batch(plan.data)]
        assert seqs[0] == gs.acked_through + 1 and seqs[-1] == start + length
        produced += seqs
        gs = gs.acked(plan.last_seq, plan.last_timestamp_ns)
    assert produced == list(range(1, gs.acked_through + 1))
