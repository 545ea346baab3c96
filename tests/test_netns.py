import subprocess

import pytest

from metallb_lab import netns


def test_documentation_addresses_only():
    assert netns.is_documentation_address("192.0.2.7/24")
    assert netns.is_documentation_address("2001:db8::1")
    for bad in ("10.0.0.1/24", "8.8.8.8", "fd00::1/64", "192.0.3.1"):
        with pytest.raises(netns.NetnsError):
            netns.check_documentation_address(bad)


def test_wait_for_is_bounded():
    with pytest.raises(TimeoutError):
        netns.wait_for(lambda: False, timeout=0.2, interval=0.05, what="never")
    assert netns.wait_for(lambda: 5, timeout=0.1) == 5


@pytest.mark.netns
def test_topology_builds_and_removes_everything(topo):
    r = topo.add_ns("r")
    n = topo.add_ns("n1")
    topo.veth(n, "eth0", r, "p1")
    topo.bridge(r, "br0", ["p1"])
    topo.addr(r, "br0", "192.0.2.1/24")
    topo.addr(n, "eth0", "192.0.2.11/24")
    topo.addr(n, "eth0", "2001:db8::11/64")
    assert n.run(["ping", "-c1", "-W2", "192.0.2.1"], check=False).returncode == 0
    proc = topo.spawn(n, ["sleep", "60"])
    names = [r.name, n.name]
    topo.close()
    assert proc.poll() is not None
    left = subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True
    ).stdout
    assert not any(name in left for name in names)
