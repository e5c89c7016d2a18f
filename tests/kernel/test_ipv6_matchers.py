"""IPv6 matchers on every flavor through BPF_PROG_TEST_RUN: verdict and counters.

Each case is one rule `-A INPUT SPEC -j DROP` (policy ACCEPT) and one datagram to the
lab's own address; the outcome is "match" (DROP, rule counted), "nomatch" (ACCEPT,
policy counted) or "hotdrop" (DROP, nothing counted), as ip6_tables decides it
(the differential suite, tests/diff/test_ipv6_diff.py, checks the same against the
real ip6tables-legacy). xdp/tc run the ingress program and, when it hands the packet
on, the INPUT companion (extension headers, link-local: decided at the hook).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bpfilter.backend import compile_table
from bpfilter.backend.testrun import LoadedTable
from bpfilter.frontend.parser import parse_restore
from bpfilter.ir import Family
from bpfilter.verify import packets as P
from tests.kernel_required import bpf_available, require_kernel

pytestmark = pytest.mark.kernel

LOCAL = "fd00::1"
SRC = "fd20::1"
PEER_MAC = "02:00:00:00:00:02"
FLAVORS = ("xdp", "tc", "nf")
HOP, RT, FRAG, ESP, AH, NONE, DST = 0, 43, 44, 50, 51, 59, 60


@dataclass
class Lab:
    ns: str
    ifindex: int
    mac: str


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    ok, why = bpf_available()
    require_kernel(ok, why)
    from bpfilter.verify.netns import Topology

    with Topology("h11m") as topo:
        topo.veth("fw", "v0", "peer", "p0")
        topo.sysctl("fw", "net.ipv6.conf.all.forwarding", 1)
        topo.sysctl("fw", "net.ipv6.conf.all.accept_dad", 0)
        topo.sysctl("fw", "net.ipv6.conf.v0.accept_dad", 0)
        topo.addr("fw", "v0", f"{LOCAL}/64")
        topo.neigh("fw", "fd00::2", PEER_MAC, "v0")
        topo.route("fw", "2001:db8::/32", "via", "fd00::2")
        topo.route("fw", "fd20::/16", "via", "fd00::2")
        yield Lab(topo.ns("fw"), topo.ifindex("fw", "v0"), topo.mac("fw", "v0"))


# --- datagrams ----------------------------------------------------------------------
def opts(nh: int, n: int = 0) -> bytes:
    """Hop-by-hop / destination options header of (n+1)*8 bytes (PadN)."""
    return bytes([nh, n, 1, 4 + 8 * n]) + bytes(4 + 8 * n)


def frag(nh: int, offset: int = 0, more: bool = False, ident: int = 7) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset | int(more), ident)


def rt(nh: int, rtype: int = 2, segleft: int = 0) -> bytes:
    return bytes([nh, 2, rtype, segleft]) + bytes(20)


def udp_l4(dport: int = 53) -> bytes:
    return struct.pack("!HHHH", 1000, dport, 12, 0) + b"data"


def tcp_l4(dport: int = 80) -> bytes:
    return struct.pack("!HHIIBBHHH", 1000, dport, 1, 0, 5 << 4, 2, 65535, 0, 0)


def icmp6_l4(t: int = 128, c: int = 0) -> bytes:
    return struct.pack("!BBHI", t, c, 0, 0)


def dg(nh: int, body: bytes, src: str = SRC, dst: str = LOCAL, hlim: int = 64) -> bytes:
    return P.ipv6_header(src, dst, nh, len(body), hlim=hlim) + body


def chain(*parts: tuple[int, bytes], final: int, l4: bytes, **kw: object) -> bytes:
    """parts: (kind, header bytes made with the right next header); first kind leads."""
    body = b"".join(h for _, h in parts) + l4
    first = parts[0][0] if parts else final
    return dg(first, body, **kw)  # type: ignore[arg-type]


def run(lab: Lab, flavor: str, text: str, datagram: bytes
        ) -> tuple[str, dict[tuple[str, int | None], tuple[int, int]]]:
    from bpfilter.verify.netns import call_in_netns

    table = parse_restore(text, family=Family.IPV6).table("filter")
    assert table is not None
    frame = P.ether(lab.mac, PEER_MAC, P.ETH_P_IPV6, datagram)

    def body() -> tuple[str, dict[tuple[str, int | None], tuple[int, int]]]:
        with LoadedTable(compile_table(table, Family.IPV6, flavor)) as lt:  # type: ignore[arg-type]
            return lt.deliver("INPUT", frame, lab.ifindex).verdict, lt.all_counters()

    return call_in_netns(lab.ns, body)


def ruleset(rule: str) -> str:
    return ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"-A INPUT {rule} -j DROP\nCOMMIT\n")


CASES: dict[str, tuple[str, bytes, str]] = {
    "src-host": ("-s fd20::1/128", dg(UDP := 17, udp_l4()), "match"),
    "src-other": ("-s fd20::2", dg(UDP, udp_l4()), "nomatch"),
    "src-negated-prefix": ("! -s fd20::/16", dg(UDP, udp_l4()), "nomatch"),
    "dst-noncontiguous": ("-d fd00::/ffff:0:ffff::", dg(UDP, udp_l4()), "match"),
    "dst-noncontiguous-miss": ("-d fd00:0:1::/ffff:0:ffff::", dg(UDP, udp_l4()), "nomatch"),
    "proto-through-chain": ("-p udp", chain((HOP, opts(DST)), (DST, opts(UDP, 1)),
                                            final=UDP, l4=udp_l4()), "match"),
    "dport-through-chain": ("-p udp --dport 53", chain((DST, opts(RT)), (RT, rt(UDP)),
                                                       final=UDP, l4=udp_l4()), "match"),
    "proto-negated": ("! -p tcp", dg(UDP, udp_l4()), "match"),
    "proto-all": ("-p all", dg(UDP, udp_l4()), "match"),
    "proto-none-header": ("-p 59", dg(NONE, b""), "match"),
    "proto-esp-final": ("-p esp", dg(ESP, b"\0" * 16), "match"),
    "proto-ah-is-skipped": ("-p udp", chain((AH, bytes([UDP, 1, 0, 0]) + bytes(8)),
                                            final=UDP, l4=udp_l4()), "match"),
    "truncated-chain-hotdrops-p": ("-p udp", dg(DST, b"\x11"), "hotdrop"),
    "truncated-chain-no-p": ("-s fd20::1", dg(DST, b"\x11"), "match"),
    "later-fragment-proto": ("-p tcp", chain((FRAG, frag(6, 16)), final=6, l4=b"x" * 16),
                             "match"),
    "later-fragment-port": ("-p tcp --dport 80", chain((FRAG, frag(6, 16)), final=6,
                                                       l4=b"x" * 16), "nomatch"),
    "later-fragment-ext-next": ("-p udp", chain((FRAG, frag(DST, 16)), final=DST,
                                                l4=b"x" * 16), "hotdrop"),
    "first-fragment-port": ("-p tcp --dport 80", chain((FRAG, frag(6, 0, True)), final=6,
                                                       l4=tcp_l4()), "match"),
    "truncated-tcp": ("-p tcp --dport 22", dg(6, tcp_l4()[:10]), "hotdrop"),
    "icmp6-type": ("-p icmpv6 -m icmp6 --icmpv6-type echo-request", dg(58, icmp6_l4()),
                   "match"),
    "icmp6-type-code": ("-p icmpv6 -m icmp6 ! --icmpv6-type 1/3", dg(58, icmp6_l4(1, 3)),
                        "nomatch"),
    "icmp6-truncated": ("-p icmpv6 -m icmp6 --icmpv6-type 128", dg(58, icmp6_l4()[:4]),
                        "hotdrop"),
    "hl-lt": ("-m hl --hl-lt 5", dg(UDP, udp_l4(), hlim=3), "match"),
    "hl-ne": ("-m hl ! --hl-eq 64", dg(UDP, udp_l4()), "nomatch"),
    "hbh-len": ("-m hbh --hbh-len 8", chain((HOP, opts(UDP)), final=UDP, l4=udp_l4()),
                "match"),
    "hbh-len-miss": ("-m hbh --hbh-len 8", chain((HOP, opts(UDP, 1)), final=UDP,
                                                 l4=udp_l4()), "nomatch"),
    "hbh-absent": ("-m hbh", dg(UDP, udp_l4()), "nomatch"),
    "dst-second": ("-m dst --dst-len 16", chain((HOP, opts(DST)), (DST, opts(UDP, 1)),
                                                final=UDP, l4=udp_l4()), "match"),
    "dst-truncated": ("-m dst", dg(DST, b"\x11"), "hotdrop"),
    "dst-longer-than-packet": ("-m dst", dg(DST, opts(UDP, 1)[:12]), "hotdrop"),
    "rt-longer-than-packet": ("-m rt", dg(RT, rt(UDP)[:16]), "hotdrop"),
    "rt-type-segsleft": ("-m rt --rt-type 2 --rt-segsleft 0", chain((RT, rt(UDP)),
                                                                     final=UDP, l4=udp_l4()),
                         "match"),
    "rt-type-negated": ("-m rt ! --rt-type 2", chain((RT, rt(UDP)), final=UDP, l4=udp_l4()),
                        "nomatch"),
    "frag-more": ("-m frag --fragmore", chain((FRAG, frag(UDP, 0, True)), final=UDP,
                                              l4=udp_l4()), "match"),
    "frag-last": ("-m frag --fraglast", chain((FRAG, frag(UDP, 0, True)), final=UDP,
                                              l4=udp_l4()), "nomatch"),
    "frag-id": ("-m frag --fragid 5:10 --fragfirst", chain((FRAG, frag(UDP, ident=7)),
                                                            final=UDP, l4=udp_l4()), "match"),
    "ipv6header-strict": ("-m ipv6header --header hop,dst",
                          chain((HOP, opts(DST)), (DST, opts(UDP)), final=UDP, l4=udp_l4()),
                          "nomatch"),
    "ipv6header-strict-prot": ("-m ipv6header --header hop,dst,prot",
                               chain((HOP, opts(DST)), (DST, opts(UDP)), final=UDP,
                                     l4=udp_l4()), "match"),
    "ipv6header-soft": ("-m ipv6header --header hop --soft",
                        chain((HOP, opts(DST)), (DST, opts(UDP)), final=UDP, l4=udp_l4()),
                        "match"),
    "ipv6header-negated": ("-m ipv6header ! --header frag --soft",
                           chain((FRAG, frag(UDP, 16)), final=UDP, l4=b"x" * 8), "nomatch"),
    "ipv6header-none": ("-m ipv6header --header none", dg(NONE, b""), "match"),
    "long-chain": ("-p udp --dport 53", dg(DST, b"".join(opts(DST) for _ in range(99))
                                            + opts(UDP) + udp_l4()), "match"),
    "long-chain-ipv6header": ("-m ipv6header --header dst,prot",
                              dg(DST, b"".join(opts(DST) for _ in range(99)) + opts(UDP)
                                 + udp_l4()), "match"),
    "link-local-source": ("-s fe80::/10 -p icmpv6",
                          dg(58, icmp6_l4(135), src="fe80::1", dst="ff02::1:ff00:1",
                             hlim=255), "match"),
}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("name", list(CASES))
def test_ipv6_match(lab: Lab, flavor: str, name: str) -> None:
    spec, datagram, outcome = CASES[name]
    verdict, counters = run(lab, flavor, ruleset(spec), datagram)
    n = len(datagram)
    want = {"match": ("DROP", (1, n), (0, 0)), "nomatch": ("ACCEPT", (0, 0), (1, n)),
            "hotdrop": ("DROP", (0, 0), (0, 0))}[outcome]
    assert (verdict, counters[("INPUT", 1)], counters[("INPUT", None)]) == want


def test_tc_ipv4_program_lets_other_families_through(lab: Lab) -> None:
    """Side by side on one TCX hook: the IPv4 table's tc program answers IPv6 frames with
    TC_ACT_UNSPEC (TCX_NEXT), so the IPv6 table's program after it still runs."""
    from bpfilter.verify.netns import call_in_netns

    text = ruleset("-p udp")
    table = parse_restore(text, family=Family.IPV4).table("filter")
    assert table is not None
    frame = P.ether(lab.mac, PEER_MAC, P.ETH_P_IPV6, dg(17, udp_l4()))

    def body() -> int:
        with LoadedTable(compile_table(table, Family.IPV4, "tc")) as lt:
            return lt.run("ingress", frame, lab.ifindex).retval

    assert call_in_netns(lab.ns, body) == -1
