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

Only the reverse tap recorded in FailbackRequested is contacted, and only if its
host is allowed (reverse_tap.py); what it answers never reaches a tenant-visible
event: a refusal or an odd answer is logged for the provider (provider_log.py)
and the event says so with a reference.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx

from services.burst.errors import Conflict, InvalidRequest, ProvisionFailed
from services.burst.provider_log import to_provider_log
from services.burst.reverse_tap import check_reverse_tap, parse_allowed
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
                 drain_timeout: float = DRAIN_TIMEOUT, http: httpx.Client | None = None,
                 allowed_hosts: str | list[str] | None = None) -> None:
        self.store, self.bucket_prefix, self.poll, self.drain_timeout = store, bucket_prefix, poll, drain_timeout
        # talks to the reverse tap's control API only; a redirect could point anywhere, so none is followed
        self.http = http or httpx.Client(timeout=60, follow_redirects=False)
        self.allowed = parse_allowed(allowed_hosts)

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
        check_reverse_tap(agent_url, self.allowed)
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
        try:
            base = check_reverse_tap(agent_url, self.allowed)  # the setting may have changed since the request
        except InvalidRequest as err:
            raise ProvisionFailed(f"{err}; then retry failback") from err
        seq = self._ask(base, "POST", "/v1/bookmarks", {"group": group, "name": name}, lambda b: int(b["sequence"]))
        deadline = time.monotonic() + self.drain_timeout
        while time.monotonic() < deadline:
            if self._ask(base, "GET", "/status", None, lambda b: int(b["groups"][group]["acked_through"])) >= seq:
                return seq
            time.sleep(self.poll)
        raise ProvisionFailed(f"the reverse tap did not ship through sequence {seq} within "
                              f"{self.drain_timeout:.0f}s; check its link to ingest, then retry failback")

    def _ask(self, base: str, method: str, path: str, body: dict | None, pick):
        """One call to the reverse tap; its answer is read here and reaches tenants only as a reference."""
        what = f"reverse tap {base}: {method} {path}"
        try:
            r = self.http.request(method, f"{base}{path}", json=body)
        except httpx.HTTPError as err:
            ref = to_provider_log(what, f"{type(err).__name__}: {err}")
            raise ProvisionFailed(f"the reverse tap at {base} could not be reached; check that it runs, then retry "
                                  f"failback (provider log reference {ref})") from None
        try:
            if r.status_code != 200:
                raise ValueError(f"HTTP {r.status_code}")
            return pick(r.json())
        except (ValueError, KeyError, TypeError) as err:
            ref = to_provider_log(what, f"{err}; answer {r.status_code}: {r.text[:2000]!r}")
            raise ProvisionFailed(f"the reverse tap at {base} refused or answered unexpectedly (HTTP "
                                  f"{r.status_code}); check its log and group, then retry failback (provider log "
                                  f"reference {ref})") from None

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
