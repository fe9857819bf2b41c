"""The soak's verifier has teeth: a lost write, a wrong byte of the initial disk, a sequence
held twice and a missing one are each counted (no servers: a fake recovery and store)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from bench.soaklib import verify
from bench.soaklib.writer import Checkpoint, Op, apply
from shared import keys

SEED = "t"
SIZE = 1 << 16


@dataclass
class _Resp:
    status_code: int
    headers: dict
    text: str = ""


class _Recovery:
    """download() writes the image given for each bookmark."""

    def __init__(self, images: dict[str, tuple[int, bytes]]) -> None:
        self.images = images

    def download(self, group, volume, out, bookmark):
        seq, image = self.images[bookmark]
        out.write_bytes(image)
        return _Resp(200, {"X-Dialback-Sequence": str(seq)})


def _run(tmp_path, corrupt):
    initial = random.Random(1).randbytes(SIZE)
    ops = [Op(i, "write" if i % 3 else "zero", (i * 4099) % (SIZE - 600), 500) for i in range(30)]
    model, cps, images = bytearray(initial), [], {}
    for n, cut in enumerate((10, 20, 30)):
        for op in ops[cps[-1].ops if cps else 0:cut]:
            apply(model, SEED, op)
        cp = Checkpoint(f"c{n}", 100 + n, hashlib.sha256(model).hexdigest(), cut, float(n))
        cps.append(cp)
        images[cp.name] = (cp.sequence, corrupt(n, bytearray(model), initial, ops))
    v = verify.Verdict()
    verify.checkpoints(_Recovery(images), "g", "d0", initial, SEED, ops, cps, [float(i) for i in range(30)], [],
                       0.0, tmp_path, v)
    return v


def test_exact_images_pass(tmp_path):
    v = _run(tmp_path, lambda n, img, initial, ops: bytes(img))
    assert (v.checkpoints_verified, v.not_exact, v.lost_ops, v.initial_bytes_wrong) == (3, 0, set(), 0)


def test_a_reverted_write_is_counted_lost_and_the_checkpoint_inexact(tmp_path):
    def revert_op_25(n, img, initial, ops):
        if n == 2:  # op 25 (a write no later op overlaps) reads back as the initial bytes
            op = ops[25]
            img[op.offset:op.offset + op.length] = initial[op.offset:op.offset + op.length]
        return bytes(img)

    v = _run(tmp_path, revert_op_25)
    assert v.not_exact == 1 and v.lost_ops == {25} and v.initial_bytes_wrong == 0
    assert v.findings[0]["checkpoint"] == "c2"


def test_a_wrong_initial_byte_is_counted(tmp_path):
    def flip_last_byte(n, img, initial, ops):
        img[-1] ^= 0xFF  # no op reaches the last byte
        return bytes(img)

    v = _run(tmp_path, flip_last_byte)
    assert v.not_exact == 3 and v.initial_bytes_wrong == 3 and not v.lost_ops


@dataclass
class _Obj:
    key: str


class _Store:
    def __init__(self, ranges):
        self.ranges = ranges

    def list(self, bucket, prefix):
        return [_Obj(f"{prefix}{keys._range(a, b)}.json") for a, b in self.ranges]


def test_journal_overlap_is_duplicated_and_gap_is_counted():
    v = verify.Verdict()
    verify.journal(_Store([(1, 10), (8, 12), (15, 20)]), "tenant1", "g", v)
    assert (v.duplicated, v.journal_gaps) == (3, 2)
    v = verify.Verdict()
    verify.journal(_Store([(1, 10), (11, 20)]), "tenant1", "g", v)
    assert (v.duplicated, v.journal_gaps, v.findings) == (0, 0, [])
