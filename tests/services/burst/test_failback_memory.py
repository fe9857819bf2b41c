"""Failback on in-memory adapters: the state machine, the checks before anything is touched, the apply
of the reverse journal, a refused baseline and a successful retry. The reverse tap's control API is
an httpx MockTransport (it is the only thing not real here besides the in-memory store and cloud)."""

from __future__ import annotations

import hashlib
import random
import shutil
import time

import httpx
import pytest

from services.burst.engine import Engine
from services.burst.errors import Conflict, InvalidRequest
from services.burst.events import EventLog
from services.burst.failback import Failback
from services.burst.images import FileImageSource
from services.burst.machine import IllegalTransition, OperationState, apply
from services.burst.model import OperationSpec
from services.burst.provider.memory import MemoryProvider
from services.burst.usage import BurstUsage
from shared.frames import Kind, Record, data_record
from shared.journal import INITIAL_SYNC_BOOKMARK
from shared.objectstore.memory import MemoryObjectStore
from shared.usage import MemoryEmitter
from tests.services.recovery.journal_builder import write_journal
from tests.services.retention.helpers import bookmark

SIZE = 1 << 20
CUT = 43


def _tap(cut: int):
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.method, req.url.path))
        if req.url.path == "/v1/bookmarks":
            return httpx.Response(200, json={"group": "g1-back", "name": "x", "sequence": cut, "timestamp_ns": 1})
        return httpx.Response(200, json={"groups": {"g1-back": {"acked_through": cut}}})

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


@pytest.fixture
def world(tmp_path):
    rng = random.Random(3)
    base = tmp_path / "images" / "acme" / "g1" / "disk0" / "p1.raw"
    base.parent.mkdir(parents=True)
    base.write_bytes(rng.randbytes(SIZE))
    original, cloud = tmp_path / "original.img", tmp_path / "cloud.img"
    shutil.copy(base, original)
    shutil.copy(base, cloud)
    # The reverse journal: the baseline's initial-sync bookmark, 40 writes, a zeroed range, the cut-over.
    recs = [bookmark("disk0-back", 1, 1, INITIAL_SYNC_BOOKMARK)]  # a volume has one group: "-back"
    with open(cloud, "r+b") as f:
        for seq in range(2, 42):
            off, data = rng.randrange(0, SIZE // 4096) * 4096, rng.randbytes(rng.choice([512, 4096, 8192]))
            recs.append(data_record("disk0-back", seq, seq, off, data))
            f.seek(off)
            f.write(data)
        recs.append(Record("disk0-back", 42, 42, 65536, 65536, Kind.ZEROES))
        f.seek(65536)
        f.write(bytes(65536))
    recs.append(bookmark("disk0-back", CUT, CUT, "failback-cut"))
    store = MemoryObjectStore()
    write_journal(store, "acme", "g1-back", {"disk0-back": SIZE}, recs, per_batch=4, per_segment=2)
    http, calls = _tap(CUT)
    engine = Engine(EventLog(tmp_path / "ev"), MemoryProvider(), FileImageSource(tmp_path / "images"),
                    BurstUsage(MemoryEmitter("/dialback/burst")))
    engine.failback = Failback(store, poll=0.01, drain_timeout=5, http=http, allowed_hosts="tap")
    engine.submit(OperationSpec(id="fo-1", tenant="acme", kind="failover", group="g1", volume="disk0"))
    assert engine.drive("acme", "fo-1").status == "running"
    return engine, original, cloud, calls


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failback_applies_only_the_cloud_changes_and_cleans_up(world):
    engine, original, cloud, calls = world
    st = engine.request_failback("acme", "fo-1", "g1-back", str(original), "http://tap", expect_sha256=_sha(cloud))
    assert st.status == "failing_back"
    st = engine.drive("acme", "fo-1")
    assert st.status == "cleaned", st.error
    assert _sha(original) == _sha(cloud)
    assert st.failback["cutover_sequence"] == CUT
    assert st.failback["applied"]["records"] == 41  # 40 writes + one zeroed range, no bookmarks
    types = [e["type"] for e in engine.events.read("acme", "fo-1")]
    i = types.index("FailbackRequested")
    assert types[i:i + 6] == ["FailbackRequested", "BaselineVerified", "CutoverBookmarked", "ChangesDrained",
                              "ChangesApplied", "FailbackVerified"]
    assert types[-1] == "OperationCleaned"
    assert ("POST", "/v1/bookmarks") in calls
    assert not [r for kind in engine.provider.res.values() for r in kind.values() if r["tags"]]


def test_a_changed_original_is_refused_then_a_retry_after_restoring_succeeds(world, tmp_path):
    engine, original, cloud, _ = world
    good = original.read_bytes()
    with open(original, "r+b") as f:
        f.write(b"diverged")
    engine.request_failback("acme", "fo-1", "g1-back", str(original), "http://tap")
    st = engine.drive("acme", "fo-1")
    assert st.status == "running" and "changed since the failover point" in st.error
    assert original.read_bytes()[:8] == b"diverged", "a refused failback writes nothing"
    original.write_bytes(good)
    engine.request_failback("acme", "fo-1", "g1-back", str(original), "http://tap")
    assert engine.drive("acme", "fo-1").status == "cleaned"
    assert _sha(original) == _sha(cloud)


def test_a_wrong_digest_leaves_the_failover_running(world):
    engine, original, _, _ = world
    engine.request_failback("acme", "fo-1", "g1-back", str(original), "http://tap", expect_sha256="0" * 64)
    st = engine.drive("acme", "fo-1")
    assert st.status == "running" and "expected" in st.error
    assert st.live_servers(), "the cloud side is kept when the cut-over did not verify"


@pytest.mark.parametrize("args,err,words", [
    (("g1-back", "/nonexistent.img", "http://tap"), InvalidRequest, "not a file"),
    (("no-such-group", None, "http://tap"), InvalidRequest, "start the tap on the cloud disk"),
    (("g1-back", None, "tap:7450"), InvalidRequest, "control URL"),
])
def test_bad_failback_requests_are_refused_and_change_nothing(world, args, err, words):
    engine, original, _, _ = world
    before = len(engine.events.read("acme", "fo-1"))
    group, target, url = args
    with pytest.raises(err) as e:
        engine.request_failback("acme", "fo-1", group, target or str(original), url)
    assert words in str(e.value)
    assert len(engine.events.read("acme", "fo-1")) == before


def test_wrong_size_target_and_wrong_state_are_refused(world, tmp_path):
    engine, _, _, _ = world
    small = tmp_path / "small.img"
    small.write_bytes(bytes(4096))
    with pytest.raises(InvalidRequest, match="bytes but the failover image"):
        engine.request_failback("acme", "fo-1", "g1-back", str(small), "http://tap")
    engine.request_cleanup("acme", "fo-1", "done")
    with pytest.raises(Conflict):
        engine.request_failback("acme", "fo-1", "g1-back", str(small), "http://tap")


def test_failback_events_are_only_legal_from_a_running_failover():
    st = OperationState(status="provisioning")
    with pytest.raises(IllegalTransition):
        apply(st, {"type": "FailbackRequested", "time": 0, "target": "x"})
    st = OperationState(status="running")
    apply(st, {"type": "FailbackRequested", "time": 0, "reverse_group": "g", "target": "x"})
    assert st.status == "failing_back"
    apply(st, {"type": "BaselineVerified", "time": 0, "md5": "m"})
    apply(st, {"type": "FailbackFailed", "time": 0, "error": "boom"})
    assert st.status == "running" and st.error == "boom"
    apply(st, {"type": "FailbackRequested", "time": 0, "reverse_group": "g", "target": "x"})
    assert st.failback["baseline"] == "m", "a retry on the same target keeps the verified baseline"
    apply(st, {"type": "FailbackVerified", "time": 0, "sha256": "h"})
    assert st.status == "cleaning"


class Crash(BaseException):
    """A process death: not caught by the engine's failure handling."""


def test_a_crash_mid_failback_resumes_where_the_events_say(world, monkeypatch):
    engine, original, cloud, calls = world
    engine.request_failback("acme", "fo-1", "g1-back", str(original), "http://tap")
    real_apply = engine.failback._apply

    def die(*a, **kw):
        raise Crash()

    monkeypatch.setattr(engine.failback, "_apply", die)
    with pytest.raises(Crash):
        engine.drive("acme", "fo-1")
    st = engine.state("acme", "fo-1")
    assert st.status == "failing_back" and st.failback["cutover_sequence"] == CUT and st.failback["drained"]
    assert ("acme", "fo-1") in engine.due(), "the ticker drives an unfinished failback"
    monkeypatch.setattr(engine.failback, "_apply", real_apply)
    assert engine.drive("acme", "fo-1").status == "cleaned"
    assert _sha(original) == _sha(cloud)
    assert calls.count(("POST", "/v1/bookmarks")) == 1, "the cut-over is not taken twice"


def test_failback_over_http(world, tokens):
    from fastapi.testclient import TestClient

    from services.burst.app import create_app
    from services.burst.config import BurstSettings

    engine, original, cloud, _ = world
    app = create_app(BurstSettings(burst_tick_seconds=0.1, **tokens.settings()), engine=engine)
    with TestClient(app, headers=tokens.bearer(tokens.acme)) as client:
        bad = client.post("/v1/tenants/acme/operations/fo-1/failback",
                          json={"reverse_group": "g1-back", "target": str(original), "agent_url": "http://tap",
                                "expect_sha256": "not-a-digest"})
        assert bad.status_code == 422
        body = {"reverse_group": "g1-back", "target": str(original), "agent_url": "http://tap",
                "expect_sha256": _sha(cloud)}
        refused = client.post("/v1/tenants/acme/operations/fo-1/failback", json=body)
        assert refused.status_code == 403 and "DIALBACK_BURST_FAILBACK_ROOT" in refused.text  # no tenant root set
        # the provider fails back on the tenant's behalf (any path on its host)
        r = client.post("/v1/tenants/acme/operations/fo-1/failback", json=body, headers=tokens.bearer(tokens.admin))
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = client.get("/v1/tenants/acme/operations/fo-1").json()
            if st["status"] in ("cleaned", "running"):
                break
            time.sleep(0.05)
    assert st["status"] == "cleaned", st["error"]
    assert st["failback"]["sha256"] == _sha(cloud) == _sha(original)


def test_failback_sends_the_reverse_taps_control_token(tmp_path):
    """The reverse tap's TCP control API wants its bearer token (docs/agent.md, "Who may connect")."""
    from services.burst.app import build_engine
    from services.burst.config import BurstSettings
    from services.burst.provider.memory import MemoryProvider

    token_file = tmp_path / "g1-back.control.token"
    token_file.write_text("t" * 43 + "\n")
    settings = BurstSettings(burst_state_dir=tmp_path / "burst", s3_endpoint="127.0.0.1:9", burst_usage=False,
                             s3_access_key="k", s3_secret_key="s", burst_agent_token_file=token_file)
    engine = build_engine(settings, provider=MemoryProvider())
    assert engine.failback.http.headers["authorization"] == "Bearer " + "t" * 43
    plain = build_engine(settings.model_copy(update={"burst_agent_token_file": None}), provider=MemoryProvider())
    assert "authorization" not in plain.failback.http.headers
