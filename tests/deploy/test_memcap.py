"""deploy.local.memcap: Kafka's memory, page cache included, is capped in a memory cgroup."""

from __future__ import annotations

import os
import subprocess

import pytest

from deploy.local import memcap

HYBRID_MOUNTS = """\
30 25 0:26 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:12 - cgroup cgroup rw,cpu
"""
HYBRID_CGROUP = "5:cpu:/\n4:memory:/process_api/abc\n0::/\n"
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V2_CGROUP = "0::/user.slice/user-0.slice/session-1.scope\n"


def test_hybrid_host_uses_the_v1_memory_hierarchy():
    assert memcap.own_cgroup(HYBRID_CGROUP, HYBRID_MOUNTS) == (
        memcap.Path("/sys/fs/cgroup/memory/process_api/abc"), "v1")


def test_unified_host_uses_v2():
    assert memcap.own_cgroup(V2_CGROUP, V2_MOUNTS) == (
        memcap.Path("/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope"), "v2")


def test_a_mount_of_part_of_the_hierarchy_is_resolved_from_its_root():
    mounts = "31 25 0:27 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert memcap.own_cgroup("4:memory:/process_api/abc\n", mounts) == (
        memcap.Path("/sys/fs/cgroup/memory/abc"), "v1")


def test_no_memory_controller_means_no_cap():
    mounts = "32 25 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    assert memcap.own_cgroup("5:cpu:/\n", mounts) is None
    assert memcap.own_cgroup(HYBRID_CGROUP, "") is None


def _need_cgroup() -> tuple[memcap.Path, str]:
    found = memcap.own_cgroup(open("/proc/self/cgroup").read(), open("/proc/self/mountinfo").read())
    if os.geteuid() != 0 or found is None:
        pytest.fail("this test needs root and a memory cgroup controller (the stack caps Kafka with one)")
    return found


def test_confine_moves_the_process_under_the_cap_and_release_removes_it():
    parent, version = _need_cgroup()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        cg, how = memcap.confine(proc.pid, "memcap-test", 64 << 20)
        assert cg is not None, how
        assert cg.parent == parent and cg.name == f"dialback-memcap-test-{proc.pid}"
        assert "capped at 64 MiB" in how
        assert int(memcap._limit_file(cg, version).read_text()) == 64 << 20
        assert cg.name in memcap.cgroup_of(proc.pid)
        memcap.release("memcap-test")
        assert cg.exists()  # still in use: rmdir refused, nothing broken
    finally:
        proc.kill()
        proc.wait()
    memcap.release("memcap-test")
    assert not cg.exists()


def test_confine_never_raises_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(memcap, "own_cgroup", lambda *_: (tmp_path / "no-such-parent", "v1"))
    cg, why = memcap.confine(os.getpid(), "memcap-test", 64 << 20)
    assert cg is None and "cannot create a memory cgroup" in why


def test_a_stopped_server_leaves_no_cgroup_behind(tmp_path):
    from deploy.local.process import Managed

    _need_cgroup()
    srv = Managed("memcap-stop", ["sleep", "60"], tmp_path, ready=lambda: True, memory_limit=64 << 20)
    pid = srv.start()
    cg = next(l for l in memcap.cgroup_of(pid).splitlines() if f"dialback-memcap-stop-{pid}" in l)
    assert "capped at 64 MiB" in srv.memory_note.read_text()
    assert srv.stop()
    parent, _ = _need_cgroup()
    assert not (parent / f"dialback-memcap-stop-{pid}").exists(), cg
    assert not srv.memory_note.exists()


def test_the_stack_caps_kafka_unless_told_not_to(tmp_path, monkeypatch):
    from deploy.local import stack as stack_mod

    monkeypatch.setattr(stack_mod.kafka, "classpath_dir", lambda cache: tmp_path / "libs")
    monkeypatch.setattr(stack_mod.kafka, "need", lambda tool: "/bin/true")
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    (tmp_path / "kafka" / "logs" / "meta.properties").write_text("")  # formatted already
    st = stack_mod.Stack(tmp_path, tmp_path / "cache")
    assert st.kafka().memory_limit == 2048 << 20
    monkeypatch.setattr(stack_mod, "KAFKA_MEMORY_MIB", 0)
    assert st.kafka().memory_limit is None


def test_the_suites_kafka_runs_capped(kafka_server):
    """tests/servers.py starts Kafka as the stack does, capped; an outside Kafka must not be given."""
    managed = kafka_server.managed
    assert managed is not None, "DIALBACK_TEST_KAFKA_BOOTSTRAP names an outside Kafka: its memory is not ours to cap"
    pid = managed.pid()
    assert f"dialback-kafka-{pid}" in memcap.cgroup_of(pid)
    assert "capped at 1536 MiB" in managed.memory_note.read_text()
