"""CLI argument checks (refused before any network or store I/O) and time parsing."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from services.recovery.cli import parse_time, register
from services.recovery.errors import BadRequest


@pytest.fixture
def app():
    a = typer.Typer()
    register(a)
    return a


def test_parse_time():
    assert parse_time("1700000000123456789") == 1700000000123456789
    assert parse_time("2026-11-25T04:05:06Z") == 1795579506 * 10**9
    assert parse_time("2026-11-25T04:05:06.5") == 1795579506 * 10**9 + 500_000_000
    assert parse_time("2026-11-25T05:05:06+01:00") == 1795579506 * 10**9
    with pytest.raises(BadRequest):
        parse_time("yesterday")


@pytest.mark.parametrize("args,needle", [
    (["recover", "g", "--volume", "d", "--out", "x.img", "--recovery", "http://127.0.0.1:9", "--token", "t"],
     "exactly one of"),
    (["recover", "g", "--volume", "d", "--at-seq", "5", "--bookmark", "b", "-"], "exactly one of"),
    (["recover", "g", "--volume", "d", "--at-seq", "5"], "exactly one destination"),
    (["recover", "g", "--volume", "d", "--at-seq", "5", "--out", "x", "--object", "k"], "exactly one destination"),
    (["recover", "g", "--volume", "all", "--at-seq", "5", "-"], "one volume"),
    (["recover", "g", "--volume", "d", "--at-time", "soon", "-"], "neither ISO 8601"),
    (["recover", "g", "--volume", "d", "--at-seq", "5", "-"], "--recovery URL and --token"),
    (["recover", "g", "--volume", "d", "--at-seq", "5", "-", "--direct"], "--tenant"),
    (["points", "g"], "--recovery URL and --token"),
])
def test_bad_invocations_exit_1_with_a_hint(app, args, needle, monkeypatch):
    for var in ("DIALBACK_RECOVERY_URL", "DIALBACK_TOKEN", "DIALBACK_TENANT"):
        monkeypatch.delenv(var, raising=False)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    assert needle in " ".join(res.output.split())


def test_points_table_and_json(capsys):
    from services.recovery.cli import _print_points

    p = {"group": "g1", "volumes": [{"volume": "disk0", "size": 1024}],
         "earliest": {"sequence": 10, "timestamp_ns": 1795579506 * 10**9},
         "latest": {"sequence": 20, "timestamp_ns": 1795579507 * 10**9}, "retained_through": 20,
         "bookmarks": [{"name": "dialback.initial-sync-complete", "sequence": 10, "timestamp_ns": 1795579506 * 10**9}]}
    _print_points(p, as_json=False)
    out = capsys.readouterr().out
    assert "earliest" in out and "2026-11-25T04:05:06" in out and "dialback.initial-sync-complete" in out
    _print_points(p, as_json=True)
    import json

    assert json.loads(capsys.readouterr().out) == p


def test_points_shows_the_inconsistency_windows(capsys, monkeypatch):
    from services.recovery.cli import _print_points

    monkeypatch.setenv("COLUMNS", "200")  # one table row per line

    t = 1795579506 * 10**9
    p = {"group": "g1", "volumes": [{"volume": "disk0", "size": 1024}],
         "earliest": {"sequence": 10, "timestamp_ns": t}, "latest": {"sequence": 40, "timestamp_ns": t},
         "retained_through": 55, "bookmarks": [],
         "windows": [{"kind": "initial-sync", "consistent_before": None,
                      "consistent_after": {"sequence": 10, "timestamp_ns": t}, "open": False},
                     {"kind": "resync", "consistent_before": {"sequence": 40, "timestamp_ns": t},
                      "consistent_after": None, "open": True}]}
    _print_points(p, as_json=False)
    out = " ".join(capsys.readouterr().out.split())
    assert "not consistent" in out and "initial-sync" in out and "journal start" in out
    assert "resync" in out and "40 (2026-11-25T04:05:06" in out and "open: resync under way" in out
