"""The state machine alone: legal histories fold, illegal ones are refused."""

import pytest

from services.burst.machine import IllegalTransition, fold

SPEC = {"id": "op-1", "tenant": "acme", "kind": "failover", "group": "g1", "volume": "disk0"}


def ev(type_, t=1.0, **data):
    return {"type": type_, "time": t, **data}


def happy():
    return [
        ev("OperationRequested", 1.0, spec=SPEC),
        ev("ProvisioningStarted", 2.0),
        ev("ImageUploaded", 3.0, key="g1/disk0@latest", id="img", checksum="c", size=10, seconds=1.5),
        ev("PortCreated", 3.5, name="s0", port_id="p"),
        ev("ServerCreated", 4.0, name="s0", server_id="srv", flavor="m1.tiny", image_id="img", stage="main"),
        ev("ServerActive", 6.0, name="s0", addresses={"net": ["10.0.0.2"]}, seconds=2.0),
        ev("StageCompleted", 6.5, stage="main"),
        ev("OperationRunning", 7.0, deadline=None),
    ]


def test_happy_path_reaches_running_with_what_was_made():
    st = fold(happy())
    assert st.status == "running"
    assert st.servers["s0"]["status"] == "ACTIVE"
    assert st.servers["s0"]["addresses"] == {"net": ["10.0.0.2"]}
    assert st.images["g1/disk0@latest"]["id"] == "img"
    assert st.timings["to_running"] == 6.0 and st.timings["boot"] == 2.0 and st.timings["image_upload"] == 1.5


def test_cleanup_path_ends_cleaned():
    evs = happy() + [ev("CleanupRequested", 8.0, reason="user"),
                     ev("ResourceDeleted", 9.0, kind="server", id="srv", name="x"),
                     ev("OperationCleaned", 10.0)]
    st = fold(evs)
    assert st.status == "cleaned" and st.terminal
    assert st.servers["s0"]["status"] == "DELETED"
    assert st.cleanup_reason == "user"


def test_failure_rolls_back_to_failed():
    evs = happy()[:3] + [ev("OperationFailed", 4.0, error="quota"), ev("RolledBack", 5.0)]
    st = fold(evs)
    assert st.status == "failed" and st.error == "quota"


@pytest.mark.parametrize("bad", [
    [ev("ProvisioningStarted")],                                      # nothing requested
    happy() + [ev("ServerCreated", name="s1", server_id="x", flavor="f", image_id="i", stage="m")],
    happy() + [ev("OperationCleaned")],                               # cleaned without cleaning
    [ev("OperationRequested", spec=SPEC), ev("OperationRequested", spec=SPEC)],
    [ev("NoSuchEvent")],
])
def test_illegal_histories_are_refused(bad):
    with pytest.raises(IllegalTransition):
        fold(bad)


def test_scaling_returns_to_running():
    evs = happy() + [ev("ScaleRequested", 8.0, count=3), ev("OperationRunning", 9.0, deadline=None)]
    st = fold(evs)
    assert st.status == "running" and st.desired_count == 3
