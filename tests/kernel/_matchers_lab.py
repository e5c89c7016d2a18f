"""Shared lab for the matcher tests: a namespace whose interface v0 receives frames.

Why a module: every tests/kernel/test_matchers*.py file runs rulesets through
BPF_PROG_TEST_RUN on every flavor, so the namespace setup, the frame builders and
the "run one rule, check verdict and counters" helper are written once here.
The leading underscore keeps pytest from collecting it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.extensions.base import match_extension
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify import packets as P
from tests.kernel_required import bpf_available, require_kernel

LOCAL = "192.168.7.1"  # v0's address: INPUT
PEER = "192.168.7.2"
FWD_DST = "10.99.1.1"  # routed out of v0: FORWARD
SRC = "172.16.5.9"
PEER_MAC = "02:00:00:00:00:02"
FLAVORS = ("xdp", "tc", "nf")


@dataclass
class Lab:
    ns: str
    ifindex: int
    mac: str

    def names(self, flavor: str) -> dict[str, str]:
        """What -i / -o see: v0 at xdp/tc ingress (and as FORWARD's route out).

        The nf test run fakes the hook state: it means to set in/out to loopback per
        hook, but (6.18) picks them before copying the user's hook, so every hook gets
        out = lo and no in device — nf cases with -i expect "no interface" there.
        """
        dev = "lo" if flavor == "nf" else "v0"
        return {"IN": dev, "OUT": dev, "INPFX": dev[0]}


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    ok, why = bpf_available()
    require_kernel(ok, why)
    from bpfilter.verify.netns import Topology

    with Topology("h7m") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.addr("fw", "v0", f"{LOCAL}/24")
        topo.sysctl("fw", "net.ipv4.ip_forward", 1)
        topo.neigh("fw", PEER, PEER_MAC, "v0")
        topo.route("fw", "10.99.0.0/16", "via", PEER)
        topo.route("fw", "blackhole", "10.66.0.0/16")
        yield Lab(topo.ns("fw"), topo.ifindex("fw", "v0"), topo.mac("fw", "v0"))


def need(*modules: str) -> None:
    """Skip when a frontend extension the rule text needs is not written yet."""
    for m in modules:
        if match_extension(m) is None:
            pytest.skip(f"frontend match extension {m!r} not available")


# --- frames --------------------------------------------------------------------------
def ip(proto: int, l4: bytes, *, src: str = SRC, dst: str = LOCAL, frag: int = 0,
       ip_options: bytes = b"", ttl: int = 64, mf: bool = False) -> bytes:
    return P.ipv4_header(src, dst, proto, len(l4), frag_offset=frag, options=ip_options,
                         ttl=ttl, mf=mf) + l4


def udp(sport: int = 1024, dport: int = 53, payload: bytes = b"data", **kw: object) -> bytes:
    src, dst = str(kw.get("src", SRC)), str(kw.get("dst", LOCAL))
    return ip(P.IPPROTO_UDP, P.udp_datagram(src, dst, sport, dport, payload), **kw)  # type: ignore[arg-type]


def tcp(sport: int = 1024, dport: int = 80, flags: str = "SYN", options: bytes = b"",
        **kw: object) -> bytes:
    src, dst = str(kw.get("src", SRC)), str(kw.get("dst", LOCAL))
    bits = 0
    for f in flags.split(","):
        bits |= P.TCP_FLAGS[f] if f else 0
    seg = P.tcp_segment(src, dst, sport, dport, bits, b"x", options=options)
    return ip(P.IPPROTO_TCP, seg, **kw)  # type: ignore[arg-type]


def icmp(typ: int = 8, code: int = 0, **kw: object) -> bytes:
    return ip(P.IPPROTO_ICMP, P.icmp_message(typ, code, payload=b"ping"), **kw)  # type: ignore[arg-type]


def truncated(proto: int, l4_bytes: int, **kw: object) -> bytes:
    """A datagram whose L4 part is only `l4_bytes` long (IP total length says so)."""
    return ip(proto, bytes(range(1, l4_bytes + 1)), **kw)  # type: ignore[arg-type]


def frame(lab: Lab, datagram: bytes) -> bytes:
    return P.ether(lab.mac, PEER_MAC, P.ETH_P_IP, datagram)


def tot_len(datagram: bytes) -> int:
    return struct.unpack_from("!H", datagram, 2)[0]


# --- running -------------------------------------------------------------------------
def ruleset(rules: str, policies: dict[str, str] | None = None, chains: str = "") -> str:
    pol = {"INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT", **(policies or {})}
    head = "".join(f":{c} {p} [0:0]\n" for c, p in pol.items())
    return f"*filter\n{head}{chains}{rules}\nCOMMIT\n"


def run(lab: Lab, flavor: str, text: str, datagrams: list[tuple[str, bytes]],
        raw: bool = False) -> tuple[list[str], dict[tuple[str, int | None], tuple[int, int]]]:
    """Compile `text` for `flavor`, run each (chain, datagram) once, return the verdicts
    and all counters. Chain INPUT/FORWARD picks the hook (xdp/tc: via the address).

    xdp/tc: LoadedTable.deliver — the ingress program, then the chain's nf companion
    when ingress passed the packet on. `raw`: whole Ethernet frames run on the hook
    named instead of the chain ("ingress" for xdp/tc)."""
    from bpfilter.verify.netns import call_in_netns

    table = parse_restore(text, family=Family.IPV4).table("filter")
    assert table is not None

    def body() -> tuple[list[str], dict[tuple[str, int | None], tuple[int, int]]]:
        progs = compile_table(table, Family.IPV4, flavor)  # type: ignore[arg-type]
        with LoadedTable(progs) as lt:
            out = []
            for chain, dg in datagrams:
                if raw:
                    out.append(lt.run(chain, dg, lab.ifindex).verdict)
                else:
                    out.append(lt.deliver(chain, frame(lab, dg), lab.ifindex).verdict)
            return out, lt.all_counters()

    return call_in_netns(lab.ns, body)


def check_rule(lab: Lab, flavor: str, spec: str, datagram: bytes, outcome: str,
               chain: str = "INPUT", nf_outcome: str | None = None) -> None:
    """One rule `-A chain SPEC -j DROP`, policy ACCEPT; outcome "match" (DROP, rule
    counted), "nomatch" (ACCEPT, policy counted) or "hotdrop" (DROP, nothing counted)."""
    spec = spec.format(**lab.names(flavor))
    if flavor == "nf" and nf_outcome is not None:
        outcome = nf_outcome
    verdicts, counters = run(lab, flavor, ruleset(f"-A {chain} {spec} -j DROP"),
                             [(chain, datagram)])
    n = tot_len(datagram)
    rule, policy = counters[(chain, 1)], counters[(chain, None)]
    got = (verdicts[0], rule, policy)
    want = {
        "match": ("DROP", (1, n), (0, 0)),
        "nomatch": ("ACCEPT", (0, 0), (1, n)),
        "hotdrop": ("DROP", (0, 0), (0, 0)),
    }[outcome]
    assert got == want, f"{flavor}: -A {chain} {spec}: got {got}, want {want}"
