"""Real traffic through an attached xdp/tc table: the ingress program decides whole
datagrams, the nf INPUT companion decides the reassembled fragmented ones, and no
packet is counted twice (the companion skips what ingress already decided)."""

from __future__ import annotations

import socket
import time

import pytest

from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from tests.kernel._matchers_lab import ruleset
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel
FW, PEER = "192.168.9.1", "192.168.9.2"
SMALL, BIG = 100, 3000  # UDP payload bytes; BIG is sent as IPv4 fragments (MTU 1500)
TEXTS = {
    "plain": ruleset("-A INPUT -p udp --dport 9 -j DROP\n-A INPUT -p udp --dport 10"),
    # names: ingress and companions also read the "ifnames" map (in = v0)
    "names": ruleset("-A INPUT -i v0 -p udp --dport 9 -j DROP\n"
                     "-A INPUT -i v+ -p udp --dport 10"),
}


def _send(port: int, size: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x" * size, (FW, port))


@pytest.mark.parametrize("rules", list(TEXTS))
@pytest.mark.parametrize("flavor", ["xdp", "tc"])
def test_fragments_go_to_the_companion_once(flavor: str, rules: str) -> None:
    ok, why = bpf_available()
    require_kernel(ok, why)
    from bpfilter.attach import attach_netfilter, attach_tc, attach_xdp
    from bpfilter.verify.netns import Topology

    table = parse_restore(TEXTS[rules], family=Family.IPV4).table("filter")
    assert table is not None
    with Topology("h7c") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", f"{FW}/24")
        topo.addr("peer", "p0", f"{PEER}/24")
        ifindex = topo.ifindex("fw", "v0")

        def attach_and_wait() -> dict:
            progs = compile_table(table, Family.IPV4, flavor)  # type: ignore[arg-type]
            with LoadedTable(progs) as lt:
                links = [attach_xdp(lt.programs["ingress"], ifindex) if flavor == "xdp"
                         else attach_tc(lt.programs["ingress"], ifindex)]
                links += [attach_netfilter(lt.programs[h], Family.IPV4, h, -1)
                          for h in ("INPUT", "FORWARD", "OUTPUT")]
                try:
                    for port, size in ((9, SMALL), (9, BIG), (10, SMALL), (10, BIG)):
                        topo.call("peer", _send, port, size)
                    time.sleep(0.3)
                    return lt.all_counters()
                finally:
                    for link in links:
                        link.detach()

        counters = topo.call("fw", attach_and_wait)
    small, big = 20 + 8 + SMALL, 20 + 8 + BIG
    assert counters[("INPUT", 1)] == (2, small + big)  # dport 9 dropped: once each
    assert counters[("INPUT", 2)] == (2, small + big)  # dport 10 counted, not decided
    assert counters[("INPUT", None)] == (2, small + big)  # ...then the policy
