"""Points inside an inconsistency window (initial sync, resync after a spool overflow) are refused by
recovery, exports and burst alike, naming the nearest consistent points; both ends are served exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.burst.errors import UnknownPoint
from services.burst.recovery_images import RecoveryImageSource
from shared.consistency import resync_complete_name, resync_start_name
from shared.frames import data_record
from shared.journal import INITIAL_SYNC_BOOKMARK
from shared.objectstore.memory import MemoryObjectStore
from tests.services.recovery.instant.history import make_client, nbd_sha256
from tests.services.recovery.journal_builder import reference, write_journal
from tests.services.retention.helpers import bookmark

VOLS = {"disk0": 1 << 18}
CHUNK = 1 << 16
START, END, LAST = 16, 25, 30  # start marker, resync-complete, last record


def ts(seq: int) -> int:
    return 1_000_000 + seq * 1000


def journal(through: int) -> list:
    """Initial sync (1-4) + its bookmark (5), writes 6-15, overflow: marker 16 stamped with 15's time,
    resync chunks interleaved with writes 17-24, resync-complete 25, writes 26-30."""
    recs = [data_record("disk0", s, ts(s), (s - 1) * CHUNK, bytes([s]) * CHUNK) for s in range(1, 5)]
    recs.append(bookmark("disk0", 5, ts(5), INITIAL_SYNC_BOOKMARK))
    recs += [data_record("disk0", s, ts(s), (s % 4) * CHUNK + 4096, bytes([s]) * 4096) for s in range(6, 16)]
    recs.append(bookmark("disk0", START, ts(15), resync_start_name(START)))
    recs += [data_record("disk0", s, ts(s), (s % 4) * CHUNK, bytes([s]) * (CHUNK // 2)) for s in range(17, END)]
    recs.append(bookmark("disk0", END, ts(END), resync_complete_name(END)))
    recs += [data_record("disk0", s, ts(s), 8192, bytes([s]) * 512) for s in range(END + 1, LAST + 1)]
    return [r for r in recs if r.sequence <= through]


@pytest.fixture
def api(tmp_path: Path):
    store = MemoryObjectStore()
    write_journal(store, "acme", "g1", VOLS, journal(LAST), per_batch=3, per_segment=2)
    write_journal(store, "acme", "open", VOLS, journal(22), per_batch=3, per_segment=2)  # resync under way
    client, headers, _ = make_client(store, tmp_path, ("acme",))
    with client:
        yield client, headers["acme"], store


def edge(seq: int, t: int | None = None) -> dict:
    return {"sequence": seq, "timestamp_ns": ts(seq) if t is None else t}


def test_points_lists_the_windows_and_latest_is_consistent(api):
    client, h, _ = api
    p = client.get("/v1/groups/g1/points", headers=h).json()
    assert p["windows"] == [
        {"kind": "initial-sync", "consistent_before": None, "consistent_after": edge(5), "open": False},
        {"kind": "resync", "consistent_before": edge(START, ts(15)), "consistent_after": edge(END), "open": False}]
    assert p["latest"] == edge(LAST)
    p = client.get("/v1/groups/open/points", headers=h).json()
    assert p["windows"][-1] == {"kind": "resync", "consistent_before": edge(START, ts(15)),
                                "consistent_after": None, "open": True}
    assert p["latest"] == edge(START, ts(15)) and p["retained_through"] == 22


@pytest.mark.parametrize("at", [{"sequence": 20}, {"sequence": START + 1}, {"sequence": END - 1},
                                {"timestamp_ns": ts(20)}, {"timestamp_ns": ts(15) + 1}, {"timestamp_ns": ts(END) - 1}])
def test_recovery_refuses_a_point_inside_the_resync_naming_the_nearest_consistent_points(api, at):
    client, h, _ = api
    r = client.get("/v1/groups/g1/volumes/disk0/image", params=at, headers=h)
    assert r.status_code == 409, r.text
    body = r.json()
    assert "inside a resync window" in body["detail"] and f"sequence {END}" in body["detail"]
    assert body["consistent_before"] == edge(START, ts(15)) and body["consistent_after"] == edge(END)
    r = client.post("/v1/groups/g1/recoveries", json={"at": at}, headers=h)
    assert r.status_code == 409 and r.json()["consistent_after"] == edge(END)


def test_open_window_refuses_with_no_point_after_yet(api):
    client, h, _ = api
    r = client.get("/v1/groups/open/volumes/disk0/image", params={"sequence": 22}, headers=h)
    assert r.status_code == 409 and r.json()["consistent_after"] is None
    assert "has not finished" in r.json()["detail"]


@pytest.mark.parametrize("at,through", [({"sequence": END}, END), ({"timestamp_ns": ts(END)}, END),
                                        ({"sequence": START}, 15), ({"timestamp_ns": ts(15)}, 15),
                                        ({"bookmark": resync_complete_name(END)}, END), ({"sequence": LAST}, LAST)])
def test_both_ends_of_the_window_are_served_exactly(api, at, through):
    client, h, _ = api
    r = client.get("/v1/groups/g1/volumes/disk0/image", params=at, headers=h)
    assert r.status_code == 200, r.text
    assert r.content == reference(VOLS, journal(LAST), through)["disk0"]


def test_initial_sync_window_is_refused(api):
    # Before the any-point window (as before this change): 422, naming its first point, the sync's end.
    client, h, _ = api
    for at in ({"sequence": 3}, {"timestamp_ns": ts(5) - 1}):
        r = client.get("/v1/groups/g1/volumes/disk0/image", params=at, headers=h)
        assert r.status_code == 422 and ("[5, 30]" in r.json()["detail"] or f"[{ts(5)}, " in r.json()["detail"])


def test_exports_refuse_inside_and_latest_is_the_window_start(api):
    client, h, _ = api
    r = client.post("/v1/groups/g1/exports", json={"volume": "disk0", "at": {"sequence": 20}}, headers=h)
    assert r.status_code == 409 and r.json()["consistent_before"] == edge(START, ts(15))
    r = client.post("/v1/groups/g1/exports", json={"volume": "disk0", "at": {"timestamp_ns": ts(21)}}, headers=h)
    assert r.status_code == 409
    assert client.get("/v1/groups/g1/exports", headers=h).json()["exports"] == []
    r = client.post("/v1/groups/open/exports", json={"volume": "disk0", "latest": True}, headers=h)
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["sequence"] == START
    want = hashlib.sha256(reference(VOLS, journal(LAST), 15)["disk0"]).hexdigest()
    assert nbd_sha256(e["port"], e["export_name"], VOLS["disk0"]) == want
    client.delete(f"/v1/groups/open/exports/{e['id']}", headers=h)


def test_burst_refuses_inside_and_pins_latest_to_the_window_start(api, tmp_path):
    _, _, store = api
    src = RecoveryImageSource(store, tmp_path / "burst")
    for point in ("seq:20", f"ts:{ts(20)}"):
        with pytest.raises(UnknownPoint, match=rf"inside a resync window.*sequence {START}.*sequence {END}"):
            src.validate("acme", "g1", "disk0", point)
    src.validate("acme", "g1", "disk0", f"seq:{END}")
    assert src.resolve("acme", "open", "disk0", "latest") == f"seq:{START}"
    assert src.resolve("acme", "g1", "disk0", "latest") == f"seq:{LAST}"
    path = src.materialize("acme", "open", "disk0", "latest")
    assert path.read_bytes() == reference(VOLS, journal(LAST), 15)["disk0"]
