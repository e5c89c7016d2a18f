"""Ingress classification of the xdp/tc flavors (which chain a packet meets), checked
through BPF_PROG_TEST_RUN on frames arriving on v0 of the lab namespace.

Policies are DROP in both INPUT and FORWARD, so "ACCEPT" here means the program passed
the packet on untouched (XDP_PASS / TC_ACT_OK) and no counter moved.
"""

from __future__ import annotations

import struct

import pytest

from bpfilter.verify import packets as P
from bpfilter.verify.netns import set_sysctl
from tests.kernel._matchers_lab import (
    FWD_DST,
    LOCAL,
    PEER_MAC,
    Lab,
    lab,  # noqa: F401  (fixture)
    ruleset,
    run,
    tot_len,
    udp,
)

pytestmark = pytest.mark.kernel
INGRESS = ("xdp", "tc")
TEXT = ruleset("", {"INPUT": "DROP", "FORWARD": "DROP"})


def eth(lb: Lab, dg: bytes, dst_mac: str | None = None, ethertype: int = P.ETH_P_IP) -> bytes:
    return P.ether(dst_mac or lb.mac, PEER_MAC, ethertype, dg)


def classify(lb: Lab, flavor: str, fr: bytes) -> tuple[str, str | None]:
    """(verdict, chain whose policy counted the packet or None)."""
    verdicts, counters = run(lb, flavor, TEXT, [("ingress", fr)], raw=True)
    moved = [c for (c, n), v in counters.items() if n is None and v != (0, 0)]
    assert len(moved) <= 1
    return verdicts[0], (moved[0] if moved else None)


@pytest.mark.parametrize("flavor", INGRESS)
def test_local_goes_to_input(lab: Lab, flavor: str) -> None:  # noqa: F811
    assert classify(lab, flavor, eth(lab, udp(dst=LOCAL))) == ("DROP", "INPUT")


@pytest.mark.parametrize("flavor", INGRESS)
def test_routed_goes_to_forward(lab: Lab, flavor: str) -> None:  # noqa: F811
    assert classify(lab, flavor, eth(lab, udp(dst=FWD_DST))) == ("DROP", "FORWARD")


@pytest.mark.parametrize("flavor", INGRESS)
def test_limited_broadcast_is_local(lab: Lab, flavor: str) -> None:  # noqa: F811
    fr = eth(lab, udp(dst="255.255.255.255"), "ff:ff:ff:ff:ff:ff")
    assert classify(lab, flavor, fr) == ("DROP", "INPUT")


@pytest.mark.parametrize("flavor", INGRESS)
def test_multicast_is_local(lab: Lab, flavor: str) -> None:  # noqa: F811
    fr = eth(lab, udp(dst="224.0.0.5"), "01:00:5e:00:00:05")
    assert classify(lab, flavor, fr) == ("DROP", "INPUT")


@pytest.mark.parametrize("flavor", INGRESS)
def test_ip_options_forwarded(lab: Lab, flavor: str) -> None:  # noqa: F811
    fr = eth(lab, udp(dst=FWD_DST, ip_options=P.ipv4_option_rr()))
    assert classify(lab, flavor, fr) == ("DROP", "FORWARD")


@pytest.mark.parametrize("flavor", INGRESS)
def test_subnet_broadcast_is_local(lab: Lab, flavor: str) -> None:  # noqa: F811
    fr = eth(lab, udp(dst="192.168.7.255"), "ff:ff:ff:ff:ff:ff")
    assert classify(lab, flavor, fr) == ("DROP", "INPUT")


PASSED = {
    "ttl-1-forward": lambda lb: eth(lb, udp(dst=FWD_DST, ttl=1)),
    "l2-broadcast-forward": lambda lb: eth(lb, udp(dst=FWD_DST), "ff:ff:ff:ff:ff:ff"),
    "blackhole-route": lambda lb: eth(lb, udp(dst="10.66.0.1")),
    "arp": lambda lb: eth(lb, bytes(28), ethertype=0x0806),
    "ipv6": lambda lb: eth(lb, P.ipv6_header("fe80::1", "fe80::2", 59, 0),
                            ethertype=P.ETH_P_IPV6),
    "ip-version-5": lambda lb: eth(lb, b"\x55" + udp()[1:]),
    "ihl-too-small": lambda lb: eth(lb, b"\x44" + udp()[1:]),
    "total-length-beyond-frame": lambda lb: eth(
        lb, udp()[:2] + struct.pack("!H", tot_len(udp()) + 40) + udp()[4:]),
    "runt-frame": lambda lb: eth(lb, udp()[:12]),
    # INPUT sees reassembled datagrams: fragments go on to the kernel and nf companions
    "first-fragment": lambda lb: eth(lb, udp(mf=True)),
    "later-fragment": lambda lb: eth(lb, udp(frag=16)),
    "forwarded-fragment": lambda lb: eth(lb, udp(dst=FWD_DST, frag=16)),
}


# The skb test run refuses IPv4 frames shorter than an IP header, so a runt frame
# can only be fed to the xdp program here (tc meets it through real traffic only).
CASES = [(f, w) for f in INGRESS for w in PASSED if not (f == "tc" and w == "runt-frame")]


@pytest.mark.parametrize(("flavor", "what"), CASES)
def test_unclassifiable_passes_untouched(lab: Lab, flavor: str, what: str) -> None:  # noqa: F811
    assert classify(lab, flavor, PASSED[what](lab)) == ("ACCEPT", None)


@pytest.mark.parametrize("flavor", INGRESS)
def test_forwarding_disabled_runs_input(lab: Lab, flavor: str) -> None:  # noqa: F811
    """bpf_fib_lookup says FWD_DISABLED before it looks at the route: the kernel then
    delivers local packets to INPUT and drops all others without any chain, so INPUT
    is the only chain a packet can meet."""
    set_sysctl(lab.ns, "net.ipv4.conf.v0.forwarding", 0)
    try:
        assert classify(lab, flavor, eth(lab, udp(dst=LOCAL))) == ("DROP", "INPUT")
        assert classify(lab, flavor, eth(lab, udp(dst=FWD_DST))) == ("DROP", "INPUT")
    finally:
        set_sysctl(lab.ns, "net.ipv4.conf.v0.forwarding", 1)


@pytest.mark.parametrize("chain", ["INPUT", "FORWARD", "OUTPUT"])
def test_nf_program_per_chain(lab: Lab, chain: str) -> None:  # noqa: F811
    """nf: one program per built-in chain at its own hook; each runs only its chain."""
    text = ruleset(f"-A {chain} -p udp -j DROP", {"INPUT": "ACCEPT", "FORWARD": "ACCEPT"})
    order = ["INPUT", "FORWARD", "OUTPUT"]
    verdicts, counters = run(lab, "nf", text, [(c, udp()) for c in order])
    assert verdicts == ["DROP" if c == chain else "ACCEPT" for c in order]
    moved = {k for k, v in counters.items() if v != (0, 0)}
    assert moved == {(chain, 1)} | {(c, None) for c in order if c != chain}
