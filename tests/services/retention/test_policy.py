"""Policy documents and the retained points they imply."""

from __future__ import annotations

import pytest

from services.retention.policy import DAY_NS, HOUR_NS, Policy, PolicyError, read_policy, write_policy
from shared.objectstore.memory import MemoryObjectStore

NOW = 20_000 * DAY_NS + 13 * HOUR_NS + 25 * 60 * 10**9  # 13:25 on some day


def test_default_policy_points():
    p = Policy()
    floor = p.floor_ns(NOW)
    assert floor == NOW - 24 * HOUR_NS - 25 * 60 * 10**9  # whole hour at or before now - 24 h
    pts = p.retained_points(NOW)
    hourly = [h for h in pts if h >= NOW - 7 * DAY_NS]
    daily = [h for h in pts if h < NOW - 7 * DAY_NS]
    assert pts == sorted(set(pts)) and pts[-1] == floor
    assert all(h % HOUR_NS == 0 for h in hourly) and len(hourly) == 6 * 24  # 14:00 seven days ago .. 13:00 yesterday (the floor), inclusive
    assert all(h % DAY_NS == 0 for h in daily) and len(daily) == 3 * 7
    assert min(pts) >= NOW - 28 * DAY_NS


def test_policy_roundtrip_and_default_when_missing():
    store = MemoryObjectStore()
    store.ensure_bucket("b")
    assert read_policy(store, "b", "g") == Policy()
    write_policy(store, "b", "g", Policy(anypoint_hours=48, hourly_days=3, daily_weeks=12))
    assert read_policy(store, "b", "g") == Policy(48, 3, 12)


@pytest.mark.parametrize("doc", [b'{"anypoint_hours": 0}', b'{"hourly_days": -1}', b'{"nope": 1}', b'[1]',
                                 b'{"daily_weeks": "x"}'])
def test_bad_policy_documents_are_refused_with_the_field(doc):
    with pytest.raises(PolicyError) as err:
        Policy.from_json(doc, "groups/g/policy.json")
    assert "groups/g/policy.json" in str(err.value)
