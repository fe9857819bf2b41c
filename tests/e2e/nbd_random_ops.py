"""Random writes, zeroes and trims through libnbd's Python binding (Debian's python3-libnbd).

Run with the system Python that has the `nbd` module:
    /usr/bin/python3 nbd_random_ops.py SOCKET EXPORT SIZE SEED COUNT   (the tap's NBD Unix socket)
Prints one JSON line per operation, in the order the server acknowledged them.
Data for a write is random.Random(f"{SEED}-{i}").randbytes(length): the test
rebuilds the same bytes to keep its reference model. Imports nothing from Dialback.
"""

import json
import random
import sys

import nbd

sock, export, size, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
h = nbd.NBD()
h.set_export_name(export)
h.connect_uri(f"nbd+unix:///{export}?socket={sock}")
assert h.get_size() == size, (h.get_size(), size)
rng = random.Random(seed)
for i in range(count):
    kind = rng.choices(["write", "zero", "trim"], weights=[7, 2, 1])[0]
    length = rng.choice([512, 4096, rng.randint(1, 128 << 10)])
    offset = rng.randrange(0, size - length)
    if kind == "write":
        h.pwrite(random.Random(f"{seed}-{i}").randbytes(length), offset,
                 nbd.CMD_FLAG_FUA if rng.random() < 0.1 else 0)
    elif kind == "zero":
        h.zero(length, offset)
    else:
        h.trim(length, offset)
    print(json.dumps({"i": i, "kind": kind, "offset": offset, "length": length}), flush=True)
h.flush()
h.shutdown()
