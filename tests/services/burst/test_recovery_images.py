"""RecoveryImageSource on an in-memory object store: points resolve, images equal a reference model,
impossible points are refused before any cloud call, and "latest" is pinned once per operation."""

from __future__ import annotations

import hashlib
import random

import pytest

from services.burst.engine import Engine
from services.burst.errors import UnknownPoint
from services.burst.events import EventLog
from services.burst.model import OperationSpec
from services.burst.provider.memory import MemoryProvider
from services.burst.recovery_images import RecoveryImageSource
from services.burst.usage import BurstUsage
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import MemoryEmitter
from tests.services.recovery.journal_builder import reference, write_journal
from tests.services.retention.helpers import bookmark

SIZE = 1 << 20
VOLS = {"disk0": SIZE}
TS0 = 1_000_000_000_000


def _records(rng: random.Random, start: int, n: int) -> list:
    out = []
    for seq in range(start, start + n):
        off = rng.randrange(0, SIZE // 4096) * 4096
        out.append(data_record("disk0", seq, TS0 + seq * 1000, off, rng.randbytes(4096)))
    return out


@pytest.fixture
def journal():
    """Initial sync (16 x 64 KiB), 40 writes, bookmark b1, 40 more writes."""
    rng = random.Random(7)
    recs = [data_record("disk0", i + 1, TS0 + (i + 1) * 1000, i * 65536, rng.randbytes(65536)) for i in range(16)]
    recs.append(bookmark("disk0", 17, TS0 + 17_000, INITIAL_SYNC_BOOKMARK))
    recs += _records(rng, 18, 40)
    recs.append(bookmark("disk0", 58, TS0 + 58_000, "b1"))
    recs += _records(rng, 59, 40)
    store = MemoryObjectStore()
    write_journal(store, "acme", "g1", VOLS, recs, per_batch=5, per_segment=3)
    return store, recs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_images_equal_the_reference_at_bookmark_sequence_timestamp_and_latest(journal, tmp_path):
    store, recs = journal
    src = RecoveryImageSource(store, tmp_path / "work")
    cases = {"b1": 58, "bookmark:b1": 58, "seq:30": 30, f"ts:{TS0 + 45_000}": 45, "latest": 98}
    for point, seq in cases.items():
        src.validate("acme", "g1", "disk0", point)
        path = src.materialize("acme", "g1", "disk0", point)
        assert _sha(path.read_bytes()) == _sha(reference(VOLS, recs, seq)["disk0"]), point
        src.release(path)
        assert not path.exists()
    assert src.resolve("acme", "g1", "disk0", "latest") == "seq:98"
    assert src.resolve("acme", "g1", "disk0", "b1") == "b1"


@pytest.mark.parametrize("group,volume,point,words", [
    ("nope", "disk0", "latest", "not found"),
    ("g1", "disk9", "latest", "disk9"),
    ("g1", "disk0", "b9", "no bookmark"),
    ("g1", "disk0", "seq:99", "outside the recoverable range"),
    ("g1", "disk0", "seq:5", "recoverable range [17, 98]"),
    ("g1", "disk0", "seq:x", "not a whole number"),
    ("g1", "disk0", "ts:yesterday", "ISO-8601"),
    ("g1", "disk0", "when:1", "use latest"),
])
def test_impossible_points_are_refused_cheaply(journal, tmp_path, group, volume, point, words):
    store, _ = journal
    src = RecoveryImageSource(store, tmp_path / "work")
    with pytest.raises(UnknownPoint) as err:
        src.validate("acme", group, volume, point)
    assert words in str(err.value)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.raw"))


def test_refused_point_creates_nothing_in_the_cloud(journal, tmp_path):
    store, _ = journal
    provider = MemoryProvider()
    engine = Engine(EventLog(tmp_path / "ev"), provider, RecoveryImageSource(store, tmp_path / "work"),
                    BurstUsage(MemoryEmitter("/dialback/burst")))
    with pytest.raises(UnknownPoint):
        engine.submit(OperationSpec(id="dr-1", tenant="acme", kind="drtest", group="g1", volume="disk0",
                                    point="b9"))
    assert not [r for kind in provider.res.values() for r in kind.values() if r["tags"]]
    assert not provider.calls, "no cloud call before the point is known to exist"
    assert not engine.events.exists("acme", "dr-1")


class FlakyUpload(MemoryProvider):
    """Fails the first upload, as if the service crashed after pinning the point."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def ensure_image(self, name, path, tags):
        if self.fail:
            self.fail = False
            raise ConnectionError("glance went away")
        return super().ensure_image(name, path, tags)


def test_latest_is_pinned_once_and_a_resumed_operation_boots_that_point(journal, tmp_path):
    store, recs = journal
    provider = FlakyUpload()
    engine = Engine(EventLog(tmp_path / "ev"), provider, RecoveryImageSource(store, tmp_path / "work"),
                    BurstUsage(MemoryEmitter("/dialback/burst")))
    engine.submit(OperationSpec(id="fo-1", tenant="acme", kind="failover", group="g1", volume="disk0"))
    # First attempt: the point is pinned, then the upload fails (the engine rolls back on failure, so
    # drive by hand up to the pin to model a crash instead).
    st = engine.state("acme", "fo-1")
    st = engine.append(st, "ProvisioningStarted")
    with pytest.raises(ConnectionError):
        engine._create_servers(st, st.spec.stage_list()[0], "net")
    events = engine.events.read("acme", "fo-1")
    assert [e for e in events if e["type"] == "PointResolved"] == [
        {**[e for e in events if e["type"] == "PointResolved"][0], "key": "g1/disk0@latest", "point": "seq:98"}]
    # Newer writes arrive before the resume: the resumed operation must still boot seq 98.
    more = _records(random.Random(8), 99, 10)
    write_journal_tail(store, recs + more)
    assert RecoveryImageSource(store, tmp_path / "w2").resolve("acme", "g1", "disk0", "latest") == "seq:108"
    st = engine.drive("acme", "fo-1")
    assert st.status == "running", st.error
    want = reference(VOLS, recs, 98)["disk0"]
    img = provider.res["image"][st.images["g1/disk0@latest"]["id"]]
    assert img["checksum"] == hashlib.md5(want).hexdigest()
    assert [e["type"] for e in engine.events.read("acme", "fo-1")].count("PointResolved") == 1
    assert not any((tmp_path / "work").rglob("*.raw")), "the image file is released after the upload"


def write_journal_tail(store, recs) -> None:
    """Rewrite the whole journal (deterministic keys: the old segments are overwritten, new ones added)."""
    write_journal(store, "acme", "g1", VOLS, recs, per_batch=5, per_segment=3)


class Unreachable(MemoryProvider):
    def flavors(self):
        raise AssertionError("the cloud was called before the point was checked")


def test_an_impossible_point_is_refused_before_the_first_cloud_call(journal, tmp_path):
    store, _ = journal
    engine = Engine(EventLog(tmp_path / "ev"), Unreachable(), RecoveryImageSource(store, tmp_path / "work"),
                    BurstUsage(MemoryEmitter("/dialback/burst")))
    with pytest.raises(UnknownPoint, match="outside the recoverable range"):
        engine.submit(OperationSpec(id="fo-2", tenant="acme", kind="failover", group="g1", volume="disk0",
                                    point="seq:500"))
