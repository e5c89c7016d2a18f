"""tcp, udp, icmp and multiport matches on every flavor, plain and negated, including
the kernel's edge cases: non-first fragments never match, a truncated L4 header makes
iptables drop the packet at once (hotdrop), IP options shift the L4 header."""

from __future__ import annotations

import pytest

from bpfilter.verify import packets as P
from tests.kernel._matchers_lab import (
    FLAVORS,
    Lab,
    check_rule,
    icmp,
    ip,
    lab,  # noqa: F401  (fixture)
    need,
    tcp,
    truncated,
    udp,
)

pytestmark = pytest.mark.kernel

MSS = P.tcp_options(mss=1460)
MANY = P.tcp_options(mss=1460, sack_perm=True, timestamp=(1, 2), wscale=7)


def tcp_doff(doff: int) -> bytes:
    """A 20-byte TCP header whose data offset claims `doff` words."""
    seg = bytearray(P.tcp_segment("1.1.1.1", "2.2.2.2", 1024, 80, 0x02))
    seg[12] = doff << 4
    return ip(P.IPPROTO_TCP, bytes(seg))


TCP = [
    ("dport", "-p tcp --dport 80", tcp(dport=80), "match"),
    ("dport-miss", "-p tcp --dport 80", tcp(dport=81), "nomatch"),
    ("dport-neg", "-p tcp ! --dport 80", tcp(dport=81), "match"),
    ("dport-neg-miss", "-p tcp ! --dport 80", tcp(dport=80), "nomatch"),
    ("dport-range", "-p tcp --dport 1000:2000", tcp(dport=2000), "match"),
    ("dport-range-miss", "-p tcp --dport 1000:2000", tcp(dport=2001), "nomatch"),
    ("dport-range-neg", "-p tcp ! --dport 1000:2000", tcp(dport=999), "match"),
    ("sport", "-p tcp --sport 1024", tcp(sport=1024), "match"),
    ("sport-neg", "-p tcp ! --sport 1024", tcp(sport=1024), "nomatch"),
    ("syn", "-p tcp --syn", tcp(flags="SYN"), "match"),
    ("syn-miss", "-p tcp --syn", tcp(flags="SYN,ACK"), "nomatch"),
    ("syn-neg", "-p tcp ! --syn", tcp(flags="ACK"), "match"),
    ("syn-neg-miss", "-p tcp ! --syn", tcp(flags="SYN"), "nomatch"),
    ("flags", "-p tcp --tcp-flags SYN,ACK SYN,ACK", tcp(flags="SYN,ACK"), "match"),
    ("flags-none", "-p tcp --tcp-flags ALL NONE", tcp(flags=""), "match"),
    ("flags-neg", "-p tcp ! --tcp-flags SYN,ACK SYN,ACK", tcp(flags="SYN,ACK"), "nomatch"),
    ("option", "-p tcp --tcp-option 2", tcp(options=MSS), "match"),
    ("option-absent", "-p tcp --tcp-option 2", tcp(), "nomatch"),
    ("option-neg", "-p tcp ! --tcp-option 2", tcp(), "match"),
    ("option-neg-miss", "-p tcp ! --tcp-option 2", tcp(options=MSS), "nomatch"),
    ("option-scan", "-p tcp --tcp-option 3", tcp(options=MANY), "match"),
    ("option-scan-miss", "-p tcp --tcp-option 5", tcp(options=MANY), "nomatch"),
    ("option-doff-short", "-p tcp --tcp-option 2", tcp_doff(4), "hotdrop"),
    ("option-beyond-datagram", "-p tcp --tcp-option 2", tcp_doff(6), "hotdrop"),
    ("all", "-p tcp --dport 80 --sport 1024 --syn", tcp(), "match"),
    ("ip-options", "-p tcp --dport 80", tcp(options=MSS, ip_options=P.ipv4_option_rr()),
     "match"),
    ("truncated", "-p tcp --dport 80", truncated(P.IPPROTO_TCP, 10), "hotdrop"),
    ("truncated-19", "-p tcp --sport 1", truncated(P.IPPROTO_TCP, 19), "hotdrop"),
    ("truncated-no-tcp-match", "-p tcp", truncated(P.IPPROTO_TCP, 10), "match"),
    ("fragment", "-p tcp --dport 80", tcp(frag=16), "nomatch"),
    ("fragment-evil", "-p tcp --dport 80", tcp(frag=8), "hotdrop"),
    ("fragment-evil-neg", "-p tcp ! --dport 80", tcp(frag=8), "hotdrop"),
    ("fragment-not-reached", "! -f -p tcp --dport 80", tcp(frag=8), "nomatch"),
]

UDP = [
    ("dport", "-p udp --dport 53", udp(dport=53), "match"),
    ("dport-miss", "-p udp --dport 53", udp(dport=54), "nomatch"),
    ("dport-neg", "-p udp ! --dport 53", udp(dport=54), "match"),
    ("dport-neg-miss", "-p udp ! --dport 53", udp(dport=53), "nomatch"),
    ("sport-range", "-p udp --sport 1000:1100", udp(sport=1024), "match"),
    ("sport-range-neg", "-p udp ! --sport 1000:1100", udp(sport=1024), "nomatch"),
    ("inverted-range", "-p udp --dport 60:50", udp(dport=55), "nomatch"),
    ("ip-options", "-p udp --dport 53", udp(ip_options=P.ipv4_option_ra()), "match"),
    ("truncated", "-p udp --dport 53", truncated(P.IPPROTO_UDP, 7), "hotdrop"),
    ("truncated-neg", "-p udp ! --dport 53", truncated(P.IPPROTO_UDP, 4), "hotdrop"),
    ("truncated-no-udp-match", "-p udp", truncated(P.IPPROTO_UDP, 4), "match"),
    ("fragment", "-p udp --dport 53", udp(frag=8), "nomatch"),
    ("fragment-neg", "-p udp ! --dport 53", udp(frag=8), "nomatch"),
]

ICMP = [
    ("name", "-p icmp --icmp-type echo-request", icmp(8), "match"),
    ("name-miss", "-p icmp --icmp-type echo-request", icmp(0), "nomatch"),
    ("neg", "-p icmp ! --icmp-type 8", icmp(0), "match"),
    ("neg-miss", "-p icmp ! --icmp-type 8", icmp(8), "nomatch"),
    ("type-code", "-p icmp --icmp-type 3/3", icmp(3, 3), "match"),
    ("type-code-miss", "-p icmp --icmp-type 3/3", icmp(3, 1), "nomatch"),
    ("type-any-code", "-p icmp --icmp-type destination-unreachable", icmp(3, 13), "match"),
    ("any", "-p icmp --icmp-type any", icmp(42, 7), "match"),
    ("any-neg", "-p icmp ! --icmp-type any", icmp(42, 7), "nomatch"),
    ("truncated", "-p icmp --icmp-type 8", truncated(P.IPPROTO_ICMP, 4), "hotdrop"),
    ("fragment", "-p icmp --icmp-type 8", icmp(8, frag=64), "nomatch"),
]

MULTIPORT = [
    ("dports", "-p tcp -m multiport --dports 22,80,1000:2000", tcp(dport=80), "match"),
    ("dports-range", "-p tcp -m multiport --dports 22,80,1000:2000", tcp(dport=1500), "match"),
    ("dports-miss", "-p tcp -m multiport --dports 22,80,1000:2000", tcp(dport=23), "nomatch"),
    ("dports-neg", "-p tcp -m multiport ! --dports 22,80", tcp(dport=81), "match"),
    ("dports-neg-miss", "-p tcp -m multiport ! --dports 22,80", tcp(dport=80), "nomatch"),
    ("sports", "-p udp -m multiport --sports 1024,5000", udp(sport=1024), "match"),
    ("ports-src", "-p tcp -m multiport --ports 80,443", tcp(sport=443, dport=5), "match"),
    ("ports-dst", "-p tcp -m multiport --ports 80,443", tcp(sport=5, dport=80), "match"),
    ("ports-miss", "-p tcp -m multiport --ports 80,443", tcp(sport=5, dport=6), "nomatch"),
    ("ports-neg", "-p tcp -m multiport ! --ports 80,443", tcp(sport=5, dport=80), "nomatch"),
    ("truncated", "-p udp -m multiport --dports 53", truncated(P.IPPROTO_UDP, 3), "hotdrop"),
    # truncated() fills the L4 bytes with 1, 2, 3, 4: destination port 0x0304 = 772
    ("four-bytes-enough", "-p udp -m multiport --dports 772",
     truncated(P.IPPROTO_UDP, 4), "match"),
    ("fragment", "-p udp -m multiport --dports 53", udp(frag=8), "nomatch"),
]


def _params(cases: list) -> object:
    return pytest.mark.parametrize("case", cases, ids=[c[0] for c in cases])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(TCP)
def test_tcp(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("tcp")
    check_rule(lab, flavor, case[1], case[2], case[3])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(UDP)
def test_udp(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("udp")
    check_rule(lab, flavor, case[1], case[2], case[3])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(ICMP)
def test_icmp(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("icmp")
    check_rule(lab, flavor, case[1], case[2], case[3])


@pytest.mark.parametrize("flavor", FLAVORS)
@_params(MULTIPORT)
def test_multiport(lab: Lab, flavor: str, case: tuple) -> None:  # noqa: F811
    need("multiport")
    check_rule(lab, flavor, case[1], case[2], case[3])
