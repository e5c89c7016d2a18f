"""The lab itself must be right before any differential result means anything.

Every packet kind the generator makes has to reach the INPUT endpoint when
sent to a local address and the FORWARD endpoint otherwise (nothing filtered);
and a real iptables DROP must really make it disappear.
"""

from __future__ import annotations

import pytest

from bpfilter.verify.packets import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PacketSpec,
    build_frames,
    ipv4_option_rr,
    tcp_options,
)

pytestmark = pytest.mark.kernel

KINDS = [
    dict(proto=IPPROTO_TCP, tcp_opts=tcp_options(1460, 7, True, (1, 2))),
    dict(proto=IPPROTO_UDP, length=300),
    dict(proto=IPPROTO_ICMP),
    dict(proto=IPPROTO_ICMP, icmp_type=3, icmp_code=3),
    dict(proto=IPPROTO_TCP, fragment="all"),
    dict(proto=IPPROTO_TCP, fragment="all", first_frag_l4=8),
    dict(proto=IPPROTO_TCP, truncate=12),
    dict(proto=IPPROTO_UDP, ip_options=ipv4_option_rr()),
    dict(proto=47),
]


def _specs() -> list[PacketSpec]:
    specs, tag = [], 1
    for i, kind in enumerate(KINDS):
        for dst in ("10.1.2.3", "20.0.0.1", "70.0.0.1"):
            spec = PacketSpec(f"172.16.0.{i + 1}", dst, ident=tag, **kind).with_tags(tag)
            tag += spec.frame_count
            specs.append(spec)
    return specs


def test_every_kind_reaches_its_path(router_lab) -> None:
    specs = _specs()
    frames = [f for s in specs for f in build_frames(s, router_lab.src_mac, router_lab.dut_mac)]
    cap = router_lab.send(frames, protocols=(IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, 47))
    for spec in specs:
        where = "input" if spec.dst.startswith("10.") else "forward"
        other = "forward" if where == "input" else "input"
        for tag in spec.tags:
            assert tag in cap.tags[where], spec.describe()
            assert tag not in cap.tags[other], spec.describe()


def test_lone_fragments_are_forwarded_but_never_delivered(router_lab) -> None:
    """INPUT sees reassembled datagrams only; FORWARD (no conntrack) sees each fragment."""
    specs = [PacketSpec("172.16.1.1", dst, IPPROTO_TCP, fragment=part, ident=n).with_tags(n)
             for n, (dst, part) in enumerate(
                 [(d, p) for d in ("10.0.0.9", "30.0.0.9") for p in ("first", "middle", "last")],
                 start=1)]
    frames = [f for s in specs for f in build_frames(s, router_lab.src_mac, router_lab.dut_mac)]
    cap = router_lab.send(frames)
    assert cap.tags["input"] == set()
    assert cap.tags["forward"] == {s.tags[0] for s in specs if s.dst.startswith("30.")}


def test_iptables_drop_really_drops(router_lab) -> None:
    rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
            "-A INPUT -p udp --dport 53 -j DROP\n-A FORWARD -d 70.0.0.0/8 -j DROP\nCOMMIT\n"
    router_lab.topo.exec("dut", ["iptables-legacy-restore"], input=rules)
    specs = [PacketSpec("172.16.2.1", "10.0.0.1", IPPROTO_UDP, dport=53).with_tags(1),
             PacketSpec("172.16.2.1", "10.0.0.1", IPPROTO_UDP, dport=54).with_tags(2),
             PacketSpec("172.16.2.1", "70.0.0.1", IPPROTO_UDP).with_tags(3),
             PacketSpec("172.16.2.1", "20.0.0.1", IPPROTO_UDP).with_tags(4)]
    frames = [f for s in specs for f in build_frames(s, router_lab.src_mac, router_lab.dut_mac)]
    cap = router_lab.send(frames)
    assert cap.tags == {"input": {2}, "forward": {4}}


KINDS6 = [
    dict(proto=58, icmp_type=128),
    dict(proto=58, icmp_type=1, icmp_code=4),
    dict(proto=IPPROTO_TCP),
    dict(proto=IPPROTO_UDP, length=400),
    dict(proto=IPPROTO_TCP, fragment="all"),
    dict(proto=IPPROTO_TCP, truncate=8),  # tag travels in a destination option
]


def test_ipv6_every_kind_reaches_its_path(router_lab) -> None:
    specs, tag = [], 1
    for kind in KINDS6:
        for dst in ("fd10::5", "2001:db8::9", "2001:db8:8000::9"):
            spec = PacketSpec("fd20::1", dst, ident=tag, **kind).with_tags(tag)
            tag += spec.frame_count
            specs.append(spec)
    frames = [f for s in specs for f in build_frames(s, router_lab.src_mac, router_lab.dut_mac)]
    cap = router_lab.send(frames, protocols6=(IPPROTO_TCP, IPPROTO_UDP, 58))
    for spec in specs:
        where = "input" if spec.dst.startswith("fd10") else "forward"
        for t in spec.tags:
            assert t in cap.tags[where], spec.describe()


def test_ip6tables_drop_really_drops(router_lab) -> None:
    rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
            "-A INPUT -p tcp --dport 22 -j DROP\n-A FORWARD -d 2001:db8:8000::/33 -j DROP\n" \
            "COMMIT\n"
    router_lab.topo.exec("dut", ["ip6tables-legacy-restore"], input=rules)
    specs = [PacketSpec("fd20::1", "fd10::1", IPPROTO_TCP, dport=22).with_tags(1),
             PacketSpec("fd20::1", "fd10::1", IPPROTO_TCP, dport=23).with_tags(2),
             PacketSpec("fd20::1", "2001:db8:8000::1", IPPROTO_UDP).with_tags(3),
             PacketSpec("fd20::1", "2001:db8::1", IPPROTO_UDP).with_tags(4)]
    frames = [f for s in specs for f in build_frames(s, router_lab.src_mac, router_lab.dut_mac)]
    cap = router_lab.send(frames, protocols6=(IPPROTO_TCP, IPPROTO_UDP))
    assert cap.tags == {"input": {2}, "forward": {4}}
