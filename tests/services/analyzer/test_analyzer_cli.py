"""`dialback analyze`, `dialback profile-import blkparse`, `dialback profile-synth`."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from agent.profile import synthetic as syn
from agent.profile.format import HEADER_SIZE, RECORD_SIZE
from services.analyzer.cli import register

MB = 1e6


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_analyze_writes_terminal_json_and_html(make_profile, tmp_path):
    a = make_profile("a", syn.periodic_bursts(7200, 0.5 * MB, 20 * MB, 1800, 120), server="web1")
    b = make_profile("b", syn.constant(7200, 1 * MB), server="db1")
    out_html, out_json = tmp_path / "r.html", tmp_path / "r.json"
    r = CliRunner().invoke(_app(), ["analyze", str(a), str(b), "--bandwidth", "50", "--rpo-target", "5",
                                    "--rpo-target", "20", "--html", str(out_html), "--json", str(out_json)])
    assert r.exit_code == 0, r.output
    assert "web1" in r.output and "db1" in r.output and "total" in r.output
    assert "5 min *" in r.output and "storage" in r.output
    d = json.loads(out_json.read_text())
    assert d["total"]["bandwidth"]["evaluated_mbps"] == 50
    # user targets are added to 15/30/60; the first one given is the primary
    assert [n["rpo_target_min"] for n in d["total"]["bandwidth"]["needed"]] == [5, 15, 20, 30, 60]
    assert d["params"]["primary_rpo_min"] == 5
    html = out_html.read_text()
    assert html.count("<img") == 2 + 2 * 3  # churn, sizes + (RPO, curve) per server and total


def test_analyze_refuses_corrupt_profile_naming_offset(make_profile):
    p = make_profile("c", syn.constant(50, MB))
    data = bytearray(p.read_bytes())
    data[HEADER_SIZE + 5 * RECORD_SIZE + 1] ^= 0xFF
    p.write_bytes(bytes(data))
    r = CliRunner().invoke(_app(), ["analyze", str(p)])
    assert r.exit_code == 2
    assert f"offset {HEADER_SIZE + 5 * RECORD_SIZE}" in r.output


def test_analyze_rejects_bad_options(make_profile):
    p = make_profile("d", syn.constant(50, MB))
    r = CliRunner().invoke(_app(), ["analyze", str(p), "--rpo-target", "0"])
    assert r.exit_code == 2 and "rpo-targets-min" in r.output


def test_import_blkparse_then_analyze(tmp_path):
    trace = tmp_path / "sda.txt"
    lines = [f"  8,0    0  {i + 1}  {i * 0.01:.9f}  77  Q  WS {(i % 500) * 8} + 8 [db]" for i in range(30000)]
    trace.write_text("\n".join(lines) + "\n")
    out = tmp_path / "sda.dbprof"
    r = CliRunner().invoke(_app(), ["profile-import", "blkparse", str(trace), "--out", str(out), "--start",
                                    "1700000000"])
    assert r.exit_code == 0, r.output
    assert "30000 writes" in r.output
    r = CliRunner().invoke(_app(), ["analyze", str(out), "--compress-ratio", "0.6", "--json", str(tmp_path / "j")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "j").read_text())["total"]
    assert d["load"]["avg_iops"] == 100 and d["load"]["avg_rate"] == 100 * 4096
    assert d["load"]["overwrite_fraction"] > 0.9  # 500 blocks rewritten over and over
    assert d["compression"] == {**d["compression"], "ratio": 0.6, "source": "given"}


def test_profile_synth(tmp_path):
    out = tmp_path / "s.dbprof"
    r = CliRunner().invoke(_app(), ["profile-synth", "--out", str(out), "--shape", "spike", "--days", "0.1"])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > HEADER_SIZE
    r = CliRunner().invoke(_app(), ["profile-synth", "--out", str(out)])
    assert r.exit_code == 2 and "exists" in r.output
