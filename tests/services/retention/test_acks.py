"""OrderedAcks never acks past an unfinished message of the same partition."""

from services.retention.acks import OrderedAcks


def test_acks_only_done_prefix_per_partition():
    acked = []
    a = OrderedAcks(acked.append)
    h = [a.track("p0", i) for i in range(5)]
    q = a.track("p1", "x")
    assert a.done([h[1], h[2]]) == 0 and acked == []
    assert a.done([h[0]]) == 3 and acked == [0, 1, 2]
    assert a.done([q]) == 1 and acked[-1] == "x"
    a.done([h[4]])
    assert acked == [0, 1, 2, "x"]
    a.done([h[3]])
    assert acked == [0, 1, 2, "x", 3, 4]
    assert a.pending() == 0


def test_forget_drops_queue_without_acking():
    acked = []
    a = OrderedAcks(acked.append)
    h = a.track("p0", 1)
    a.forget({"p0"})
    a.done([h])
    assert acked == []
