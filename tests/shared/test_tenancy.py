import pytest

from shared import keys, tenancy
from shared.errors import InvalidName


def test_topic_and_bucket_names():
    assert tenancy.writes_topic("acme") == "dialback.acme.writes"
    assert tenancy.control_topic("acme") == "dialback.acme.control"
    assert tenancy.tenant_bucket("acme") == "dialback-acme"
    assert tenancy.tenant_of_topic("dialback.acme.writes") == "acme"
    assert tenancy.tenant_of_topic(tenancy.USAGE_TOPIC) is None


@pytest.mark.parametrize("bad", ["", "A", "ab", "has.dot", "UPPER", "a--b", "-lead", "x" * 40, "tr_ail"])
def test_bad_tenant_ids_are_refused(bad):
    with pytest.raises(InvalidName, match="tenant id"):
        tenancy.writes_topic(bad)


def test_keys_sort_in_sequence_order():
    ks = [keys.segment_key("g", a, b) for a, b in [(100, 199), (2, 99), (1000, 1999)]]
    assert sorted(ks) == [keys.segment_key("g", 2, 99), keys.segment_key("g", 100, 199),
                          keys.segment_key("g", 1000, 1999)]
    assert keys.parse_range(ks[0]) == (100, 199)
