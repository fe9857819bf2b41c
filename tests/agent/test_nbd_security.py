"""Who may connect to the NBD tap: the 0600 Unix socket, and TCP only with mutual TLS (real clients)."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from pydantic import ValidationError

from agent.config import AgentSettings
from agent.nbd import protocol as p
from agent.nbd.client import NbdClientError, connect, raw_option
from agent.runtime import AgentThread
from shared.nbd_tls import NbdTlsError, client_context, make_certs, server_context
from tests.agent.conftest import agent_settings, make_image

MiB = 1 << 20
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-libnbd is a Debian package


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    server, client = make_certs(d / "good", ["127.0.0.1", "localhost"])
    _, stranger = make_certs(d / "other", ["127.0.0.1"])  # a client of another CA
    return server, client, stranger


@pytest.fixture
def tls_tap(tmp_path, certs):
    img = make_image(tmp_path / "a.img", 8 * MiB)
    h = AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"disk0": img}, nbd_port=0,
                                   nbd_tls_dir=certs[0])).start()
    try:
        yield h
    finally:
        h.stop()


def test_tcp_without_tls_is_refused_by_the_settings():
    with pytest.raises(ValidationError, match="nbd_tls_dir"):
        AgentSettings(nbd_port=10809)


def test_a_client_without_tls_gets_nothing(tls_tap):
    port = tls_tap.agent.nbd_port
    assert port
    assert raw_option("127.0.0.1", port, p.OPT_LIST) == p.REP_ERR_TLS_REQD
    with pytest.raises(NbdClientError, match="refused"):
        connect("127.0.0.1", port, "disk0", timeout=10)
    res = subprocess.run(["nbdinfo", f"nbd://127.0.0.1:{port}/disk0"], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "export-size" not in res.stdout, res.stdout  # libnbd: "not supported"


def test_only_a_client_certificate_of_our_ca_gets_in(tls_tap, certs):
    _, client, stranger = certs
    port = tls_tap.agent.nbd_port
    with connect("127.0.0.1", port, "disk0", tls=client_context(client)) as c:
        c.pwrite(b"over mutual TLS" * 100, 4096, fua=True)
        assert c.pread(1500, 4096) == b"over mutual TLS" * 100
    # trusts our server, presents a certificate of another CA: the server must refuse it
    foreign = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    foreign.load_verify_locations(client / "ca-cert.pem")
    foreign.load_cert_chain(stranger / "client-cert.pem", stranger / "client-key.pem")
    with pytest.raises((ssl.SSLError, NbdClientError, OSError)):
        with connect("127.0.0.1", port, "disk0", tls=foreign, timeout=10) as c:
            c.pread(512, 0)
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts the server, but shows no certificate
    bare.load_verify_locations(client / "ca-cert.pem")
    with pytest.raises((ssl.SSLError, NbdClientError, OSError)):
        with connect("127.0.0.1", port, "disk0", tls=bare, timeout=10) as c:
            c.pread(512, 0)
    with connect("127.0.0.1", port, "disk0", tls=client_context(client)) as c:  # the server lived through it
        assert c.pread(15, 4096) == b"over mutual TLS"


def test_nbdinfo_and_libnbd_over_nbds(tls_tap, certs):
    _, client, stranger = certs
    uri = f"nbds://127.0.0.1:{tls_tap.agent.nbd_port}/disk0"
    ok = subprocess.run(["nbdinfo", f"{uri}?tls-certificates={client}"], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert "export-size: 8388608" in ok.stdout
    bad = subprocess.run(["nbdinfo", f"{uri}?tls-certificates={stranger}"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode != 0
    script = ("import nbd,sys\nh=nbd.NBD()\nh.set_tls(nbd.TLS_REQUIRE)\nh.set_tls_certificates(sys.argv[2])\n"
              "h.connect_uri(sys.argv[1])\nh.pwrite(b'libnbd' * 1000, 65536)\nh.flush()\n"
              "assert h.pread(6000, 65536) == b'libnbd' * 1000\nh.shutdown()\nprint('ok')\n")
    res = subprocess.run([SYSTEM_PYTHON, "-c", script, uri, str(client)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
    with open(tls_tap.agent.settings.volume_map["disk0"], "rb") as fh:
        fh.seek(65536)
        assert fh.read(6000) == b"libnbd" * 1000


def test_the_unix_socket_works_with_real_clients_and_tcp_is_off_by_default(tmp_path):
    img = make_image(tmp_path / "a.img", 4 * MiB)
    h = AgentThread(agent_settings(tmp_path, "http://127.0.0.1:9", {"disk0": img})).start()
    try:
        assert h.agent.nbd_port is None and h.agent.nbd_tcp is None
        sock = h.agent.nbd_socket
        res = subprocess.run(["nbdinfo", f"nbd+unix:///disk0?socket={sock}"], capture_output=True, text=True,
                             timeout=30)
        assert res.returncode == 0 and "export-size: 4194304" in res.stdout, res.stderr
        script = ("import nbd,sys\nh=nbd.NBD()\nh.connect_uri(sys.argv[1])\nh.pwrite(b'u' * 4096, 0)\n"
                  "assert h.pread(4096, 0) == b'u' * 4096\nh.shutdown()\n")
        res = subprocess.run([SYSTEM_PYTHON, "-c", script, f"nbd+unix:///disk0?socket={sock}"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
    finally:
        h.stop()


def test_tls_directories_are_checked(tmp_path, certs):
    server, client, _ = certs
    with pytest.raises(NbdTlsError, match="lacks"):
        server_context(client)  # a client directory is not a server one
    with pytest.raises(NbdTlsError, match="already holds"):
        make_certs(server.parent, ["127.0.0.1"])  # never overwrites keys
    loose = tmp_path / "loose"
    loose.mkdir()
    for f in server.iterdir():
        (loose / f.name).write_bytes(f.read_bytes())
    (loose / "server-key.pem").chmod(0o644)
    with pytest.raises(NbdTlsError, match="chmod 600"):
        server_context(loose)


def test_nbd_certs_command_writes_both_directories(tmp_path):
    import typer
    from typer.testing import CliRunner

    from agent.cli import register

    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["agent", "nbd-certs", str(tmp_path / "c"), "--hostname", "127.0.0.1"])
    assert out.exit_code == 0, out.output
    assert "--nbd-tls-dir" in out.output and "tls-certificates=" in "".join(out.output.split())
    server_context(tmp_path / "c" / "server")
    client_context(tmp_path / "c" / "client")
    assert (tmp_path / "c" / "client" / "client-key.pem").stat().st_mode & 0o077 == 0
    again = CliRunner().invoke(app, ["agent", "nbd-certs", str(tmp_path / "c")])
    assert again.exit_code == 1 and "never overwritten" in " ".join(again.output.split())


def test_qemu_img_over_tls(tls_tap, certs):
    _, client, _ = certs
    argv = ["qemu-img", "info", "--output=json", "--object",
            f"tls-creds-x509,id=tls0,dir={client},endpoint=client", "--image-opts",
            f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={tls_tap.agent.nbd_port},"
            "export=disk0,tls-creds=tls0"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and '"virtual-size": 8388608' in res.stdout, res.stderr
    plain = subprocess.run(["qemu-img", "info", f"nbd://127.0.0.1:{tls_tap.agent.nbd_port}/disk0"],
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0
