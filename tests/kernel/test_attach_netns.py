"""The namespace toolkit the attach and differential tests stand on.

What must hold: every namespace is deleted even when the test dies (exception,
Ctrl-C), names never collide between runs, and running code "inside" a
namespace never moves the test process itself out of the host's.
"""

from __future__ import annotations

import os
import socket

import pytest

from bpfilter.verify import netns
from bpfilter.verify.netns import Topology
from tests.conftest import require_netns

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def _root() -> None:
    require_netns()


def own_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_namespaces_are_deleted_even_when_the_body_raises(error: type[BaseException]) -> None:
    with pytest.raises(error):
        with Topology("boom") as topo:
            topo.veth("a", "x0", "b", "y0")
            names = list(topo.namespaces.values())
            assert all(netns.netns_exists(n) for n in names)
            raise error()
    assert not any(netns.netns_exists(n) for n in names)


def test_names_carry_the_pid_and_are_unique() -> None:
    with Topology("u") as one, Topology("u") as two:
        a, b = one.netns("r"), two.netns("r")
        assert a != b
        assert a.startswith(f"bpft-{os.getpid()}-") and b.startswith(f"bpft-{os.getpid()}-")


def test_cleanup_stale_removes_only_dead_owners() -> None:
    dead = "bpft-999999999-1-stale"  # no such pid
    alive = netns.unique_name("alive")
    netns.netns_add(dead)
    netns.netns_add(alive)
    try:
        removed = netns.cleanup_stale()
        assert dead in removed and alive not in removed
        assert not netns.netns_exists(dead) and netns.netns_exists(alive)
    finally:
        netns.netns_del(dead)
        netns.netns_del(alive)


def test_running_inside_never_moves_the_caller() -> None:
    before = own_netns()
    with Topology("in") as topo:
        ns = topo.netns("a")
        inside = netns.call_in_netns(ns, own_netns)
        forked = netns.fork_in_netns(ns, own_netns)
        assert inside == forked != before
        with pytest.raises(ZeroDivisionError):
            netns.call_in_netns(ns, lambda: 1 / 0)
    assert own_netns() == before


def test_sysctls_and_devices_stay_in_their_namespace() -> None:
    host_forward = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    with Topology("iso") as topo:
        topo.veth("a", "v0", "b", "v1")
        topo.sysctl("a", "net.ipv4.ip_forward", 1 - int(host_forward))
        assert netns.get_sysctl(topo.ns("a"), "net.ipv4.ip_forward") != host_forward
        assert netns.get_sysctl(topo.ns("b"), "net.ipv4.ip_forward") == "0"
        assert topo.ifindex("a", "v0") > 1
        with pytest.raises(OSError):
            socket.if_nametoindex("v0")  # not in the host's namespace
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == host_forward


def test_exec_runs_a_command_inside() -> None:
    with Topology("ex") as topo:
        topo.veth("a", "q0", "b", "q1")
        out = topo.exec("a", ["ip", "-o", "link", "show"]).stdout
        assert "q0@" in out and "q1" not in out
        with pytest.raises(netns.NetnsError):
            topo.exec("a", ["ip", "link", "show", "nope"])
