"""free_port never hands the same port twice in one process (two servers of one pipeline once got the same port)."""

from deploy.local.process import free_port


def test_free_port_hands_out_distinct_ports():
    ports = [free_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)
