"""Spool incarnations (Dialback issue 13, defect 3): a new spool of a known group is refused, not
deduplicated away; only an explicit re-protection starts a new epoch, numbered after acked_through.

In memory (TestClient, memory bus); the whole path with the real agent is in
tests/agent/test_incarnation.py and tests/e2e/test_reprotect.py.
"""

from __future__ import annotations

from services.ingest.state import TenantState

from .ingest_helpers import BATCH, VOLUME_SIZE, batch

A = "a" * 32
B = "b" * 32
VOLUMES = [{"volume": "disk0", "size": VOLUME_SIZE}]
INC = "X-Dialback-Incarnation"


def _register(client, tenants, incarnation, reprotect=None, group="g1"):
    body = {"volumes": VOLUMES, "incarnation": incarnation}
    if reprotect is not None:
        body["reprotect"] = reprotect
    return client.put(f"/v1/groups/{group}", headers=tenants.headers("acme"), json=body)


def _post(client, tenants, body, incarnation, group="g1"):
    extra = {"Content-Type": BATCH}
    if incarnation is not None:
        extra[INC] = incarnation
    return client.post(f"/v1/groups/{group}/batches", content=body, headers=tenants.headers("acme", **extra))


def _produced(harness) -> int:
    return len(harness.writes.messages("acme"))


def test_a_new_spool_of_a_known_group_is_refused_not_deduplicated(client, tenants, harness):
    r = _register(client, tenants, A)
    assert r.status_code == 200, r.text
    assert r.json()["incarnation"] == A and r.json()["epoch"] == 1
    assert _post(client, tenants, batch(1, 3), A).json() == {"acked_through": 3}
    before = _produced(harness)

    # The spool was wiped: a new incarnation numbers from 1 again.
    r = _register(client, tenants, B)
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "incarnation"
    assert "--reprotect" in r.json()["detail"] and "another spool" in r.json()["detail"]
    r = _post(client, tenants, batch(1, 3), B)
    assert r.status_code == 409, r.text  # before: 200 {"acked_through": 3}, nothing produced
    assert r.json()["reason"] == "incarnation"
    r = _post(client, tenants, batch(4, 5), B)  # not even a batch that would continue the journal
    assert r.status_code == 409 and r.json()["reason"] == "incarnation"
    assert _produced(harness) == before
    # Re-registering the old incarnation is still the same group, idempotently.
    assert _register(client, tenants, A).status_code == 200


def test_a_batch_without_the_incarnation_header_is_refused_for_a_group_that_has_one(client, tenants, harness):
    assert _register(client, tenants, A).status_code == 200
    r = _post(client, tenants, batch(1, 3), None)
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "incarnation" and INC in r.json()["detail"]
    assert _produced(harness) == 0


def test_reprotect_starts_a_new_epoch_after_acked_through_and_refuses_the_old_spool(client, tenants, harness):
    assert _register(client, tenants, A).status_code == 200
    assert _post(client, tenants, batch(1, 3), A).json() == {"acked_through": 3}
    r = _register(client, tenants, B, reprotect=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["incarnation"], body["epoch"], body["epoch_first_seq"], body["acked_through"]) == (B, 2, 4, 3)
    # The new epoch continues the journal: its records follow acked_through, gap-free.
    assert _post(client, tenants, batch(4, 6, ts0=10_000), B).json() == {"acked_through": 6}
    # The old spool (say it comes back from a backup) is now the stranger.
    r = _post(client, tenants, batch(7, 8, ts0=10_000), A)
    assert r.status_code == 409 and r.json()["reason"] == "incarnation"
    # Re-protecting again with the same incarnation is idempotent (a lost answer, retried).
    again = _register(client, tenants, B, reprotect=True).json()
    assert (again["epoch"], again["epoch_first_seq"], again["acked_through"]) == (2, 4, 6)

    # The control log says what happened, and each event alone rebuilds the group (compaction).
    events = harness.control.replay("acme")
    kinds = [e["type"] for e in events]
    assert kinds.count("GroupReprotected") == 1
    rep = next(e for e in events if e["type"] == "GroupReprotected")
    assert (rep["incarnation"], rep["previous_incarnation"], rep["epoch"], rep["epoch_first_seq"]) == (B, A, 2, 4)
    last = TenantState.replay(events[-1:]).groups["g1"]
    assert (last.incarnation, last.epoch, last.epoch_first_seq, last.acked_through) == (B, 2, 4, 6)
    full = TenantState.replay(events).groups["g1"]
    assert full == last


def test_incarnation_survives_an_ingest_restart(harness, tenants):
    with harness.client() as c:
        assert _register(c, tenants, A).status_code == 200
        assert _post(c, tenants, batch(1, 2), A).json() == {"acked_through": 2}
    with harness.client() as c:  # a new ingest replays the control log
        r = _post(c, tenants, batch(1, 2), B)
        assert r.status_code == 409 and r.json()["reason"] == "incarnation"
        assert _register(c, tenants, B).status_code == 409


def test_a_group_registered_without_an_incarnation_adopts_the_first_one(client, tenants, harness):
    # Groups registered before incarnations existed (or by tools): the first agent to register
    # with an incarnation adopts the group, from then on the group is guarded.
    r = client.put("/v1/groups/g1", headers=tenants.headers("acme"), json={"volumes": VOLUMES})
    assert r.status_code == 200 and "incarnation" not in r.json()
    assert _post(client, tenants, batch(1, 2), None).json() == {"acked_through": 2}
    r = _register(client, tenants, A)
    assert r.status_code == 200 and r.json()["incarnation"] == A and r.json()["epoch"] == 1
    assert _post(client, tenants, batch(3, 4), A).json() == {"acked_through": 4}
    assert _register(client, tenants, B).status_code == 409


def test_bad_incarnation_values_are_refused(client, tenants):
    for bad in ("", "x" * 65, "not hex!", 12):
        r = _register(client, tenants, bad)
        assert r.status_code == 422, (bad, r.text)
    r = client.put("/v1/groups/g1", headers=tenants.headers("acme"),
                   json={"volumes": VOLUMES, "incarnation": A, "reprotect": "yes"})
    assert r.status_code == 422, r.text
