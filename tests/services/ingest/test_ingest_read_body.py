"""read_limited: one buffer from Content-Length; too long, too short and oversize bodies refused."""

from __future__ import annotations

import asyncio

import pytest

from services.ingest.api.body import read_limited
from services.ingest.errors import BatchTooLarge, MalformedBatch


class FakeRequest:
    def __init__(self, chunks: list[bytes], declared: int | None) -> None:
        self.headers = {} if declared is None else {"content-length": str(declared)}
        self._chunks = chunks

    async def stream(self):
        for c in self._chunks:
            yield c


def read(chunks, declared, limit=1000):
    return asyncio.run(read_limited(FakeRequest(chunks, declared), limit))


def test_declared_length_is_filled_in_place():
    chunks = [bytes([i]) * 100 for i in range(7)]
    assert read(chunks, 700) == b"".join(chunks)


def test_chunked_body_without_length():
    assert read([b"ab", b"cd"], None) == b"abcd"


@pytest.mark.parametrize("chunks, declared, error", [
    ([b"x" * 10], 5, MalformedBatch),      # longer than announced
    ([b"x" * 3], 5, MalformedBatch),       # ended early
    ([b"x" * 10], 2000, BatchTooLarge),    # announced over the limit
    ([b"x" * 600, b"x" * 600], None, BatchTooLarge),
    ([b""], "12a", MalformedBatch),
])
def test_refused(chunks, declared, error):
    req = FakeRequest(chunks, None)
    if declared is not None:
        req.headers = {"content-length": str(declared)}
    with pytest.raises(error):
        asyncio.run(read_limited(req, 1000))


def test_a_hold_reserves_the_declared_length_before_reading_and_refuses_past_the_cap():
    from services.ingest.errors import Overloaded
    from services.ingest.inflight import InflightBytes

    pool = InflightBytes(total=1500, per_tenant=1000)
    with pool.hold("acme") as first:
        assert asyncio.run(read_limited(FakeRequest([b"x" * 700], 700), 1000, first)) == b"x" * 700
        assert pool.by_tenant == {"acme": 700}
        req = FakeRequest([b"y" * 100] * 4, 400)
        with pytest.raises(Overloaded), pool.hold("acme") as second:
            asyncio.run(read_limited(req, 1000, second))
        assert pool.by_tenant == {"acme": 700}, "a refused body reserves nothing"
        with pool.hold("globex") as other:  # chunked: counted as it comes, the total cap is shared
            with pytest.raises(Overloaded):
                asyncio.run(read_limited(FakeRequest([b"z" * 500, b"z" * 500], None), 1000, other))
            assert other.bytes == 500 and pool.total == 1200
    assert pool.total == 0 and pool.by_tenant == {}
