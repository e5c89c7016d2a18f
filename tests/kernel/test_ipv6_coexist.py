"""IPv6 beside IPv4, and neighbor discovery under default-drop, through the real CLIs.

Neighbor discovery: ip6tables' INPUT DROP policy drops neighbor solicitations and
advertisements too, so a host that allows only echo requests cannot be pinged by a
peer that does not know its MAC yet. bpfilter6 must give the same answer on every
hook: the reference is ip6tables-legacy in the same namespaces, run first.

Side by side: the IPv4 and IPv6 tables are separate rule spaces with separate state;
loading one must never detach or change the other. nf links carry the family in the
hook; tc (TCX) holds one program per family, each handing the other family's frames
on (TC_ACT_UNSPEC); XDP holds one program per interface, so the second family's
xdp restore is refused and the first one keeps working.
"""

from __future__ import annotations

import pathlib
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.conftest import require_netns

pytestmark = pytest.mark.kernel

ALLOW_NDP = ("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT\n"
             "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT\n")
ALLOW_PING = "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT\n"


def v6_ruleset(rules: str) -> str:
    return ("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"{rules}COMMIT\n")


@pytest.fixture
def pair() -> Iterator[object]:
    """Two namespaces on one link, addresses without DAD, no static neighbors."""
    require_netns()
    from bpfilter.verify.netns import Topology

    with Topology("h11n") as topo:
        topo.veth("a", "a0", "b", "b0")
        for role in ("a", "b"):
            topo.sysctl(role, "net.ipv6.conf.all.accept_dad", 0)
        topo.addr("a", "a0", "fd01::1/64")
        topo.addr("b", "b0", "fd01::2/64")
        yield topo


def _echo(family: int, dst: str, timeout: float = 1.0) -> bool:
    """One ICMP(v6) echo request from this namespace; True when the reply comes back.
    (A raw socket, not ping(8): no extra package, no ping_group_range.)"""
    import os
    import select
    import socket

    from bpfilter.verify import packets as P

    af, proto = ((socket.AF_INET6, socket.IPPROTO_ICMPV6) if family == 6
                 else (socket.AF_INET, socket.IPPROTO_ICMP))
    ident = os.getpid() & 0xFFFF
    msg = P.icmp_message(128 if family == 6 else 8, 0, ident.to_bytes(2, "big") + b"\0\1",
                         b"h11-echo")  # the kernel fills in the ICMPv6 checksum itself
    with socket.socket(af, socket.SOCK_RAW, proto) as sock:
        sock.sendto(msg, (dst, 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return False
            data = sock.recv(2048)
            icmp = data if family == 6 else data[(data[0] & 15) * 4:]
            if icmp[0] == (129 if family == 6 else 0) and icmp[4:6] == ident.to_bytes(2, "big"):
                return True
    return False


def _ping(topo: object) -> bool:
    from bpfilter.verify.netns import call_in_netns

    for role in ("a", "b"):
        topo.exec(role, ["ip", "-6", "neigh", "flush", "all"], check=False)  # type: ignore[attr-defined]
    return call_in_netns(topo.ns("a"), _echo, 6, "fd01::2")  # type: ignore[attr-defined]


class _Run:
    """BPFILTER_RUN_DIR with a bpffs mounted from the host's mount namespace."""

    def __init__(self) -> None:
        from bpfilter.verify.diff6 import Bpfilter6

        self.b6 = Bpfilter6("nf", pathlib.Path(tempfile.mkdtemp(prefix="h11-")))
        self.env = {"BPFILTER_RUN_DIR": str(self.b6.run_dir)}

    def restore(self, topo: object, cmd: str, hook: str, text: str, iface: str,
                check: bool = True) -> object:
        path = self.b6.run_dir / f"{cmd}-{hook}.rules"
        path.write_text(text)
        argv = [cmd, "--hook", hook] + (["--iface", iface] if hook != "nf" else []) + [str(path)]
        return topo.exec("b", argv, env=self.env, check=check)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.b6.close()


@pytest.fixture
def run_dir() -> Iterator[_Run]:
    r = _Run()
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize("hook", ["nf", "xdp", "tc"])
@pytest.mark.parametrize("rules,reachable", [("", False), (ALLOW_PING, False),
                                             (ALLOW_NDP + ALLOW_PING, True)],
                         ids=["drop-all", "ping-only", "ndp-and-ping"])
def test_neighbor_discovery_like_ip6tables(pair, run_dir: _Run, hook: str, rules: str,
                                           reachable: bool) -> None:
    text = v6_ruleset(rules)
    pair.exec("b", ["ip6tables-legacy-restore"], input=text)
    assert _ping(pair) is reachable  # the reference, in these very namespaces
    empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    pair.exec("b", ["ip6tables-legacy-restore"], input=empty)
    assert _ping(pair)
    run_dir.restore(pair, "bpfilter6-restore", hook, text, "b0")
    assert _ping(pair) is reachable


V4 = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A INPUT -p icmp -j DROP\nCOMMIT\n")
V6 = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j DROP\nCOMMIT\n")
V6_OPEN = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def _ping4(topo: object) -> bool:
    from bpfilter.verify.netns import call_in_netns

    return call_in_netns(topo.ns("a"), _echo, 4, "10.1.0.2")  # type: ignore[attr-defined]


@pytest.mark.parametrize("hook4,hook6", [("nf", "nf"), ("tc", "tc"), ("xdp", "tc"),
                                         ("tc", "xdp")])
@pytest.mark.parametrize("first", ["4", "6"])
def test_families_side_by_side(pair, run_dir: _Run, hook4: str, hook6: str,
                               first: str) -> None:
    pair.addr("a", "a0", "10.1.0.1/24")
    pair.addr("b", "b0", "10.1.0.2/24")
    assert _ping4(pair) and _ping(pair)
    loads = [("bpfilter-restore", hook4, V4), ("bpfilter6-restore", hook6, V6)]
    for cmd, hook, text in (loads if first == "4" else loads[::-1]):
        run_dir.restore(pair, cmd, hook, text, "b0")
    assert not _ping4(pair) and not _ping(pair)
    # reloading one family leaves the other alone
    run_dir.restore(pair, "bpfilter6-restore", hook6, V6_OPEN, "b0")
    assert _ping(pair) and not _ping4(pair)
    run_dir.restore(pair, "bpfilter6-restore", hook6, V6, "b0")
    assert not _ping(pair) and not _ping4(pair)


@pytest.mark.parametrize("first", ["4", "6"])
def test_xdp_for_both_families_is_refused_without_harm(pair, run_dir: _Run,
                                                       first: str) -> None:
    """One XDP program per interface: the second family's restore fails, nothing of the
    first family's changes."""
    pair.addr("a", "a0", "10.1.0.1/24")
    pair.addr("b", "b0", "10.1.0.2/24")
    loads = [("bpfilter-restore", V4), ("bpfilter6-restore", V6)]
    if first == "6":
        loads.reverse()
    (cmd1, text1), (cmd2, text2) = loads
    run_dir.restore(pair, cmd1, "xdp", text1, "b0")
    proc = run_dir.restore(pair, cmd2, "xdp", text2, "b0", check=False)
    assert proc.returncode != 0  # type: ignore[attr-defined]
    assert "XDP" in proc.stderr  # type: ignore[attr-defined]
    v4_blocked, v6_blocked = not _ping4(pair), not _ping(pair)
    assert (v4_blocked, v6_blocked) == ((True, False) if first == "4" else (False, True))
