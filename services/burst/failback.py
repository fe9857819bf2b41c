"""Failback: bring a failed-over volume home, shipping only what changed in the cloud.

After a failover the cloud disk (on one machine: a file standing for the volume
the server boots from, materialized from the failover point) is protected by
the same tap in reverse, into a group of its own, started with
DIALBACK_AGENT_BASELINE=true: its disk already equals the failover image, so
there is no initial copy and only writes made after the failover travel
(tap -> ingest -> Kafka -> retention -> MinIO). `failback` then, each step an
event of the failover operation:

1. BaselineVerified -- the original disk still equals the failover image (its
   md5 is the Glance checksum recorded by ImageUploaded); otherwise refused:
   the changes only make sense on top of that exact baseline.
2. CutoverBookmarked -- a bookmark on the reverse tap (the user stopped writes
   in the cloud) and ingest acknowledged it: nothing older is in flight.
3. ChangesDrained -- retention has the reverse journal in MinIO through it.
4. ChangesApplied -- every record up to the bookmark applied in sequence
   order onto the original disk. Writes are absolute, so a replay after a
   crash gives the same bytes: the step is idempotent.
5. FailbackVerified -- sha256 of the original disk (compared with the
   expected digest when the caller gave one), then the usual cleanup.

A failure records FailbackFailed and leaves the failover running.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx

from services.burst.errors import Conflict, InvalidRequest, ProvisionFailed
from services.recovery.errors import RecoveryError
from services.recovery.planner import load_group
from services.recovery.synth import _fetch, _payload
from shared.frames import Kind
from shared.objectstore import ObjectStore
from shared.tenancy import check_volume, tenant_bucket

DRAIN_TIMEOUT = 600.0
ZERO_CHUNK = 8 << 20


def file_digest(path: Path, algo: str = "sha256", chunk: int = 8 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class Failback:
    def __init__(self, store: ObjectStore, bucket_prefix: str = "dialback-", poll: float = 0.5,
                 drain_timeout: float = DRAIN_TIMEOUT, http: httpx.Client | None = None) -> None:
        self.store, self.bucket_prefix, self.poll, self.drain_timeout = store, bucket_prefix, poll, drain_timeout
        self.http = http or httpx.Client(timeout=60)  # talks to the reverse tap's control API

    # -- request -----------------------------------------------------------------------------
    def check(self, st, reverse_group: str, target: str, agent_url: str) -> None:
        """Everything that can be checked before the first step; raises InvalidRequest / Conflict."""
        if st.spec.kind.value != "failover":
            raise InvalidRequest(f"only a failover can fail back; {st.id} is a {st.spec.kind.value}")
        if st.status != "running":
            raise Conflict(f"operation {st.id} is {st.status}; fail back once the failover is running")
        check_volume(reverse_group)
        path = Path(target)
        if not path.is_file():
            raise InvalidRequest(f"target {target!r} is not a file; give the original disk's path")
        image = next(iter(st.images.values()), None)
        if image is None or os.path.getsize(path) != image["size"]:
            raise InvalidRequest(f"target {target!r} is {os.path.getsize(path)} bytes but the failover image "
                                 f"is {image and image['size']}; give the original disk of {st.spec.volume}")
        if not agent_url.startswith(("http://", "https://")):
            raise InvalidRequest("agent_url must be the reverse tap's control URL, e.g. http://127.0.0.1:7450")
        try:
            load_group(self.store, tenant_bucket(st.tenant, self.bucket_prefix), reverse_group)
        except RecoveryError as err:
            raise InvalidRequest(f"reverse group {reverse_group!r}: {err}; start the tap on the cloud disk "
                                 "with DIALBACK_AGENT_BASELINE=true first") from err

    # -- steps -------------------------------------------------------------------------------
    def run(self, engine, st):
        target = Path(st.failback["target"])
        if "baseline" not in st.failback:
            image = next(iter(st.images.values()))
            md5 = file_digest(target, "md5")
            if md5 != image["checksum"]:
                raise ProvisionFailed(f"the original disk {target} changed since the failover point (md5 {md5}, "
                                      f"failover image {image['checksum']}); restore it to that point, then retry")
            st = engine.append(st, "BaselineVerified", md5=md5)
        fb = st.failback
        if "cutover_sequence" not in fb:
            seq = self._cutover(fb["agent_url"], fb["reverse_group"], f"failback-{st.id}-{fb['attempt']}")
            st = engine.append(st, "CutoverBookmarked", sequence=seq)
        fb = st.failback
        if "drained" not in fb:
            self._drain(st.tenant, fb["reverse_group"], fb["cutover_sequence"])
            st = engine.append(st, "ChangesDrained", sequence=fb["cutover_sequence"])
        fb = st.failback
        if "applied" not in fb:
            t0 = time.monotonic()
            records, written = self._apply(st.tenant, fb["reverse_group"], fb["reverse_volume"],
                                           fb["cutover_sequence"], target)
            st = engine.append(st, "ChangesApplied", records=records, bytes=written,
                               seconds=round(time.monotonic() - t0, 3))
        digest = file_digest(target)
        expect = st.failback.get("expect_sha256")
        if expect and digest != expect:
            raise ProvisionFailed(f"after applying the changes the original disk's sha256 is {digest}, expected "
                                  f"{expect}; the disk was not cut over (retry failback)")
        return engine.append(st, "FailbackVerified", sha256=digest)

    def _cutover(self, agent_url: str, group: str, name: str) -> int:
        r = self.http.post(f"{agent_url}/v1/bookmarks", json={"group": group, "name": name})
        if r.status_code != 200:
            raise ProvisionFailed(f"the reverse tap refused the cut-over bookmark ({r.status_code}): {r.text}")
        seq = r.json()["sequence"]
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            g = self.http.get(f"{agent_url}/status").json()["groups"][group]
            if g["acked_through"] >= seq:
                return seq
            time.sleep(self.poll)
        raise ProvisionFailed(f"the reverse tap did not ship through sequence {seq} within "
                              f"{self.drain_timeout:.0f}s; check its link to ingest, then retry failback")

    def _drain(self, tenant: str, group: str, seq: int) -> None:
        bucket = tenant_bucket(tenant, self.bucket_prefix)
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            latest = load_group(self.store, bucket, group).latest
            if latest is not None and latest.sequence >= seq:
                return
            time.sleep(self.poll)
        raise ProvisionFailed(f"retention did not store group {group!r} through sequence {seq} within "
                              f"{self.drain_timeout:.0f}s; check the retention service, then retry failback")

    def _apply(self, tenant: str, group: str, volume: str, through: int, target: Path) -> tuple[int, int]:
        """Records 1..through of ``volume`` written in sequence order; returns (records, bytes written)."""
        j = load_group(self.store, tenant_bucket(tenant, self.bucket_prefix), group)
        applied = records = written = 0
        fd = os.open(target, os.O_WRONLY)
        try:
            for entry in j.entries_between(0, through):
                for rec in _fetch(self.store, j.bucket, entry.segment):
                    if rec.sequence <= applied or rec.sequence > through:
                        continue  # overlap with an entry already applied, or after the cut-over
                    if rec.sequence != applied + 1:
                        raise ProvisionFailed(f"reverse journal of {group!r} misses sequence {applied + 1}; "
                                              "nothing after it was applied; retry failback")
                    applied = rec.sequence
                    if rec.volume != volume or rec.kind == Kind.BOOKMARK:
                        continue
                    if rec.kind == Kind.DATA:
                        os.pwrite(fd, _payload(rec, entry.segment), rec.offset)
                    else:  # ZEROES / TRIM: the original disk must read zeroes there too
                        for off in range(rec.offset, rec.offset + rec.length, ZERO_CHUNK):
                            os.pwrite(fd, bytes(min(ZERO_CHUNK, rec.offset + rec.length - off)), off)
                    records += 1
                    written += rec.length
            if applied != through:
                raise ProvisionFailed(f"reverse journal of {group!r} ends at {applied}, before the cut-over "
                                      f"at {through}; retry failback")
            os.fsync(fd)
        finally:
            os.close(fd)
        return records, written
