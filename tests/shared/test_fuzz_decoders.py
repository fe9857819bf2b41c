"""Fuzzing the decoders that face the network (bounded: a few seconds in all).

Every input, random or a mutation of a valid encoding, either decodes or
raises the codec's own error, and never inflates past a small heap bound
(tests/shared/fuzz_cases.py). The long run is ``bench/fuzz.py --examples N``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from shared.frames import MAX_RECORD_BYTES

from .bombs import bomb_batch
from .fuzz_cases import TARGETS

EXAMPLES = {name: 100 for name in TARGETS} | {"frames": 200, "plan_single": 150, "segment": 120}

# Fixed inputs each target always sees, whatever hypothesis draws: the bombs of Dialback issue 13.
_BOMBS = [bomb_batch(declared=MAX_RECORD_BYTES), bomb_batch(declared=MAX_RECORD_BYTES, content_size=False),
          bomb_batch(declared=256 << 20)]
_SEGMENT_BOMBS = [len(b).to_bytes(4, "little") + b for b in _BOMBS]
FIXED = {"frames": _BOMBS, "plan_single": _BOMBS, "segment": _SEGMENT_BOMBS, "plan_body": _SEGMENT_BOMBS}


def fuzz(name: str, examples: int, deadline_ms: int | None = 2000):
    """The property for target ``name`` as a runnable hypothesis test of ``examples`` examples."""
    strategy, check = TARGETS[name]

    @settings(max_examples=examples, deadline=None if deadline_ms is None else timedelta(milliseconds=deadline_ms),
              database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])
    @given(strategy)
    def run(value) -> None:
        check(value)

    return run


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_decoder_decodes_or_raises_its_own_error(name):
    check = TARGETS[name][1]
    for value in FIXED.get(name, []):
        check(value)
    fuzz(name, EXAMPLES[name])()
