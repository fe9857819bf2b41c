"""bench/rpo_replay.py: its planning pieces, and one short replay through the real agent (fake ingest)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import zstandard

from agent.profile import synthetic as syn
from agent.runtime import AgentThread
from services.analyzer.queue import rpo_series
from tests.agent.conftest import agent_settings, make_image
from tests.agent.fake_ingest import FakeIngest, IngestServer

MB = 1e6
_spec = importlib.util.spec_from_file_location("rpo_replay", Path(__file__).parents[3] / "bench" / "rpo_replay.py")
rpo_replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rpo_replay)


def test_plan_scales_time_and_rate(make_profile):
    p = make_profile("p", syn.periodic_bursts(600, 0.1 * MB, 2 * MB, 100, 10), write_size=65536)
    b, ops, ratio = rpo_replay.replay_plan(str(p), 0, None, 10, 0.5, max_writes=50, max_write=1 << 20)
    assert len(b) == 60
    assert b[0] == pytest.approx(0.5 * 10 * 2 * MB)  # the burst second packs 10 profile seconds
    assert b[1] == pytest.approx(0.5 * 10 * 0.1 * MB)
    assert ops.max() <= 50 and (ops[b >= 4096] >= 1).all()
    assert ratio == pytest.approx(0.5, rel=1e-3)


def test_payloads_compress_to_the_asked_ratio():
    pay = rpo_replay.Payloads(0.35)
    zc = zstandard.ZstdCompressor(level=1)
    data = [pay.make(65536) for _ in range(20)]
    got = sum(len(zc.compress(d)) for d in data) / (20 * 65536)
    assert got == pytest.approx(0.35, abs=0.02)


def test_predict_uses_shipper_framing():
    b = np.array([3 * MB] * 10 + [0.0] * 30)
    n = np.where(b > 0, 48, 0)
    pred = rpo_replay.predict(b, n, 0.5, 1 * MB, 0.0, "disk0")
    wire = b * 0.5 + n * (37 + 5)
    wire += np.ceil(wire / (1 << 20)) * 20
    np.testing.assert_allclose(pred, rpo_series(wire, 1 * MB), rtol=1e-9)


@pytest.mark.timeout(240)
def test_replay_through_agent_matches_prediction(tmp_path, make_profile):
    ingest = IngestServer(FakeIngest()).start()
    disk = make_image(tmp_path / "d.img", 64 << 20)
    settings = agent_settings(tmp_path, ingest.url, {"disk0": disk}, bandwidth=1_000_000)
    agent = AgentThread(settings).start()
    try:
        st = agent.agent.status()
        prof = make_profile("r", syn.periodic_bursts(70, 0.1 * MB, 3 * MB, 1000, 25, phase=5),
                            write_size=65536, compress_ratio=0.5)
        out = rpo_replay.main(["--profile", str(prof), "--bandwidth", "1000000",
                               "--nbd", st["nbd"]["socket"],
                               "--control", st["control_socket"], "--drain-timeout", "120"])
    finally:
        agent.stop()
        ingest.stop()
    assert out["samples"] > 100 and out["written_bytes"] > 0.9 * out["planned_bytes"]
    assert out["predicted_p99_rpo_s"] > 5  # the bursts do queue up
    # ±20 % is the acceptance figure (see docs/analyzer.md); a loaded CI box gets some slack.
    assert abs(out["p99_error"]) < 0.3, out
