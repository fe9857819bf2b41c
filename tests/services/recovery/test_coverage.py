"""Coverage.claim against a byte-array model."""

import random

from services.recovery.coverage import Coverage


def test_claim_matches_model():
    rng = random.Random(1)
    for _ in range(200):
        cov, model = Coverage(), bytearray(300)
        for _ in range(30):
            a = rng.randrange(0, 300)
            b = min(300, a + rng.randrange(0, 60))
            free = cov.claim(a, b)
            want, run = [], None
            for i in range(a, b):
                if not model[i]:
                    run = (run[0], i + 1) if run and run[1] == i else (i, i + 1)
                    if want and want[-1][1] == i:
                        want[-1] = (want[-1][0], i + 1)
                    else:
                        want.append((i, i + 1))
            model[a:b] = b"\x01" * (b - a)
            assert free == want
            assert cov.covered_bytes() == sum(model)
            assert all(e < s2 for e, s2 in zip(cov.ends, cov.starts[1:]))
