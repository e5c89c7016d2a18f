"""In-process measurements: compile/load time and BPF_PROG_TEST_RUN ns/packet.

Everything kernel-facing runs inside a network namespace created here and deleted
afterwards. In it, every IPv4 address is local (`ip route add local 0.0.0.0/0 dev lo
table local`, the AnyIP trick), so xdp/tc classify every probe as INPUT, where the
generated rules live, the same as the nf program at INPUT.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.rulesets import Rule5, probe_packets, restore_text
from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family, Table
from bpfilter.verify import packets as P

PEER_MAC = "02:00:00:00:00:02"
LINEAR = 10**9  # min_run / lookup_min_run that keeps every rule in linear code


@dataclass(frozen=True)
class Lab:
    ns: str
    ifindex: int
    mac: str


@contextmanager
def lab() -> Iterator[Lab]:
    """A namespace with one veth end `v0` where every address is local."""
    from bpfilter.verify.netns import Topology

    with Topology("bench") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", "192.168.7.1/24")
        topo.route("fw", "local", "0.0.0.0/0", "dev", "lo", "table", "local")
        yield Lab(topo.ns("fw"), topo.ifindex("fw", "v0"), topo.mac("fw", "v0"))


def frame(pkt: tuple[int, int, int, int, int], mac: str) -> bytes:
    src, dst = (str(ipaddress.IPv4Address(a)) for a in pkt[:2])
    proto, sport, dport = pkt[2:]
    if proto == P.IPPROTO_TCP:
        l4 = P.tcp_segment(src, dst, sport, dport, 0x02, b"x" * 10)
    elif proto == P.IPPROTO_UDP:
        l4 = P.udp_datagram(src, dst, sport, dport, b"x" * 18)
    else:
        l4 = P.icmp_message(8, 0, payload=b"x" * 18)
    return P.ether(mac, PEER_MAC, P.ETH_P_IP, P.ipv4_header(src, dst, proto, len(l4)) + l4)


def parse_table(text: str) -> Table:
    table = parse_restore(text, family=Family.IPV4).table("filter")
    assert table is not None
    return table


def compile_kw(shape: str) -> dict[str, int | bool]:
    """compile_table options: "lookup" (trees even for tiny runs) or "linear"."""
    if shape == "lookup":
        return {"lookups": True, "lookup_min_run": 1}
    return {"lookups": False, "min_run": LINEAR}


@dataclass(frozen=True)
class TestRunRow:
    __test__ = False
    flavor: str
    shape: str
    rules: int
    probe: str
    expect: str  # verdict the reference classification predicts
    verdict: str
    ns: int
    insns: int
    compile_s: float
    load_s: float


def measure_testrun(rules: list[Rule5], flavors: list[str], shapes: list[str], repeat: int,
                    lab_: Lab) -> list[TestRunRow]:
    """ns/packet of first-, middle-, last- and no-match probes (call inside lab_.ns)."""
    table = parse_table(restore_text(rules))
    probes = probe_packets(rules)
    out = []
    for shape in shapes:
        for flavor in flavors:
            t0 = time.perf_counter()
            progs = compile_table(table, Family.IPV4, flavor, **compile_kw(shape))  # type: ignore[arg-type]
            t1 = time.perf_counter()
            hook = "INPUT" if flavor == "nf" else "ingress"
            with LoadedTable(progs) as lt:
                t2 = time.perf_counter()
                insns = next(p for p in progs if p.hook == hook).program.insn_count
                for name, (pkt, idx) in probes.items():
                    res = lt.run(hook, frame(pkt, lab_.mac), lab_.ifindex, repeat=repeat)
                    expect = "ACCEPT" if idx is None else rules[idx].verdict
                    out.append(TestRunRow(flavor, shape, len(rules), name, expect, res.verdict,
                                          res.duration_ns, insns, t1 - t0, t2 - t1))
    return out


def in_lab(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn(*args, lab) inside a fresh bench namespace."""
    from bpfilter.verify.netns import call_in_netns

    with lab() as lb:
        return call_in_netns(lb.ns, fn, *args, lb)


def interfaces() -> list[tuple[int, str]]:
    return socket.if_nameindex()
