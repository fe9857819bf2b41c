"""shared.keys: the client-writable key rule (only recoveries/ may be named by a client)."""

from __future__ import annotations

import pytest

from shared import keys
from shared.errors import InvalidName

OWN = [keys.chunk_key("ab" * 32), keys.lease_key("g", "l1"), keys.base_key("g", 7), keys.manifest_key("g"),
       keys.segment_key("g", 1, 2), keys.timeline_key("g", 1, 2), keys.policy_key("g")]


@pytest.mark.parametrize("key", OWN + ["recoveries/../" + OWN[0], "recoveries//a", "recoveries/a//",
                                       "recoveries/./a", "/recoveries/a", "recoveries", "", "recoveries/a\x00",
                                       "recoveries/" + "é" * 450])
def test_refused_with_the_allowed_prefix_named(key):
    with pytest.raises(InvalidName, match="recoveries/"):
        keys.check_client_key(key)


@pytest.mark.parametrize("key", ["recoveries/x.img", "recoveries/a/b/disk0.img", "recoveries/a/", "recoveries/",
                                 keys.recovery_prefix("g", 5) + "disk0.img", "recoveries/" + "x" * 880])
def test_accepted(key):
    assert keys.check_client_key(key) == key


def test_default_recovery_prefix_is_client_writable_and_sorts_by_sequence():
    assert keys.recovery_prefix("g", 5) < keys.recovery_prefix("g", 40)
    assert keys.check_client_key(keys.recovery_prefix("g", 5))
