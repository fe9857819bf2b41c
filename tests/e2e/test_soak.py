"""The short soak (bench/soak.py, docs/soak.md): every fault kind once, under steady random
writes, on its own Kafka, MinIO and toxiproxy; every checkpoint recovers byte-exact."""

from __future__ import annotations

import json

import pytest

from bench.soak import run
from bench.soaklib.faults import KINDS
from deploy.local.process import StartError
from tests.servers import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_short_soak_loses_duplicates_and_corrupts_nothing():
    try:
        figures = run(minutes=0, seed=11, kinds=list(KINDS), rate=20, disk_mib=8, checkpoint_seconds=4.0,
                      gap=(0.5, 2.0), echo=lambda m: None)
    except StartError as err:
        unavailable("the soak's servers (Kafka, MinIO, toxiproxy)", err)
    report = json.dumps(figures, indent=1)
    assert set(figures["faults_injected"]) == set(KINDS), report
    assert figures["writes_acknowledged"] > 500, report
    assert figures["checkpoints_verified"] == figures["checkpoints_recorded"] > 10, report
    assert figures["tap_disk_matches_model"], report
    assert figures["writes_lost"] == 0 and figures["initial_bytes_lost"] == 0, report
    assert figures["duplicated"] == 0, report
    assert figures["journal_gaps"] == 0, report
    assert figures["not_exact"] == 0, report
    assert not figures["faults_unrecovered"], report
