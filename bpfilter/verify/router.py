"""The standard three-namespace lab: sender → router (device under test) → sink.

    src:s0 ──── in0:dut:out0 ──── k0:sink
                      :out1 ──── k1:sink

The router ("dut") is where a ruleset is loaded.  Its address plan makes the
verdict observable for every generated packet:
- destinations in LOCAL_NET (10.0.0.0/8, a ``local`` route on lo) are
  delivered to the router itself → filter/INPUT, seen by raw sockets there;
- destinations in the rest of 0.0.0.0/1 are routed to the sink (0/2 via
  out0, 64/2 via out1) → filter/FORWARD, seen by taps on k0/k1;
- sources live in SOURCE_NET (128.0.0.0/1 minus multicast/reserved), routed
  back to the sender, so replies and ICMP errors the router makes (which quote
  the tagged packet) never reach the sink and can not fake an arrival.
Sender and sink have no IP address at all: they never answer or forward, and
the router reaches them through permanent neighbour entries.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bpfilter.verify.netns import Topology, ip
from bpfilter.verify.packets import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from bpfilter.verify.traffic import Capture, Endpoint, exchange

LOCAL_NET = ipaddress.IPv4Network("10.0.0.0/8")
FORWARD_NET = ipaddress.IPv4Network("0.0.0.0/1")
SOURCE_NET = ipaddress.IPv4Network("128.0.0.0/1")
TRANSIT_NET = ipaddress.IPv4Network("100.64.0.0/28")
# Addresses a generated packet must never use as source or destination.
UNUSABLE = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3", "100.64.0.0/28"))

# IPv6 plan, same shape: local fd10::/16, forwarded 2001:db8::/32 (first half via out0,
# second via out1), sources fd20::/16 (routed back to the sender).
LOCAL6_NET = ipaddress.IPv6Network("fd10::/16")
FORWARD6_NET = ipaddress.IPv6Network("2001:db8::/32")
SOURCE6_NET = ipaddress.IPv6Network("fd20::/16")

IN_IFACES = ("in0",)
OUT_IFACES = ("out0", "out1")
DEFAULT_PROTOCOLS = (IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP)


@dataclass(frozen=True)
class AddressPlan:
    """One family's address plan as the generators see it (addresses as ints).

    ``anchors``: where generated anchor addresses are drawn from, (lo, hi) per
    kind: "src", "local" (delivered → INPUT), "fwd0"/"fwd1" (forwarded via
    out0/out1 → FORWARD).
    """

    family: int
    bits: int
    source: ipaddress.IPv4Network | ipaddress.IPv6Network
    local: ipaddress.IPv4Network | ipaddress.IPv6Network
    forward: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]  # via out0, out1
    unusable: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    anchors: dict[str, tuple[int, int]]

    def address(self, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(value) if self.family == 4 else ipaddress.IPv6Address(value)

    def text(self, value: int) -> str:
        return str(self.address(value))

    def usable_source(self, value: int) -> bool:
        addr = self.address(value)
        return addr in self.source and not any(addr in net for net in self.unusable)

    def usable_destination(self, value: int) -> bool:
        addr = self.address(value)
        ok = addr in self.local or any(addr in net for net in self.forward)
        return ok and not any(addr in net for net in self.unusable)

    def is_local(self, value: int) -> bool:
        return self.address(value) in self.local

    def out_iface(self, value: int) -> str:
        return OUT_IFACES[0] if self.address(value) in self.forward[0] else OUT_IFACES[1]


def usable_source(addr: ipaddress.IPv4Address) -> bool:
    return addr in SOURCE_NET and not any(addr in net for net in UNUSABLE)


def usable_destination(addr: ipaddress.IPv4Address) -> bool:
    return addr in FORWARD_NET and not any(addr in net for net in UNUSABLE)


def _span(lo: str, hi: str) -> tuple[int, int]:
    return int(ipaddress.ip_address(lo)), int(ipaddress.ip_address(hi))


PLAN4 = AddressPlan(
    4, 32, SOURCE_NET, LOCAL_NET,
    (ipaddress.IPv4Network("0.0.0.0/2"), ipaddress.IPv4Network("64.0.0.0/2")), UNUSABLE,
    {"src": _span("128.0.0.0", "223.255.255.255"), "local": _span("10.0.0.0", "10.255.255.255"),
     "fwd0": _span("1.0.0.0", "63.255.255.255"), "fwd1": _span("64.0.0.0", "126.255.255.255")})
PLAN6 = AddressPlan(
    6, 128, SOURCE6_NET, LOCAL6_NET,
    (ipaddress.IPv6Network("2001:db8::/33"), ipaddress.IPv6Network("2001:db8:8000::/33")), (),
    {"src": _span("fd20::", "fd20:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
     "local": _span("fd10::", "fd10:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
     "fwd0": _span("2001:db8::", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"),
     "fwd1": _span("2001:db8:8000::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")})


def plan_for(family: int) -> AddressPlan:
    return PLAN4 if family == 4 else PLAN6


def path_of(dst: str) -> str:
    """"input" when the router delivers ``dst`` locally, else "forward"."""
    return "input" if ipaddress.IPv4Address(dst) in LOCAL_NET else "forward"


@dataclass
class RouterLab:
    """A built lab: namespace names, MACs for crafting frames, and `send`."""

    topo: Topology
    src_mac: str
    dut_mac: str

    @property
    def dut(self) -> str:
        return self.topo.ns("dut")

    def send(self, frames: list[bytes], protocols: tuple[int, ...] = DEFAULT_PROTOCOLS,
             protocols6: tuple[int, ...] = (), **kwargs: object) -> Capture:
        """Send frames from the sender; the Capture has endpoints "input" and "forward".

        ``protocols6``: also listen for these IPv6 next headers on the router
        (their arrivals are merged into "input").
        """
        endpoints = {
            "input": Endpoint(self.dut, protocols=tuple(sorted(set(protocols)))),
            "forward": Endpoint(self.topo.ns("sink"), ifaces=("k0", "k1")),
        }
        if protocols6:
            endpoints["input6"] = Endpoint(self.dut, protocols=tuple(sorted(set(protocols6))),
                                           family=6)
        capture = exchange((self.topo.ns("src"), "s0"), frames, endpoints,
                           **kwargs)  # type: ignore[arg-type]
        if protocols6:
            capture.tags["input"] |= capture.tags.pop("input6")
            capture.datagrams["input"] += capture.datagrams.pop("input6")
        return capture


# Fixed MACs make twin labs byte-identical, so one list of frames serves both.
MACS = {("src", "s0"): "02:b5:00:00:00:01", ("dut", "in0"): "02:b5:00:00:01:00",
        ("dut", "out0"): "02:b5:00:00:02:00", ("sink", "k0"): "02:b5:00:00:02:01",
        ("dut", "out1"): "02:b5:00:00:03:00", ("sink", "k1"): "02:b5:00:00:03:01"}
SRC_MAC = MACS["src", "s0"]
DUT_MAC = MACS["dut", "in0"]


def build_router_lab(topo: Topology) -> RouterLab:
    """Create the three namespaces and wire them (see the module docstring)."""
    topo.veth("src", "s0", "dut", "in0", up=False)
    topo.veth("dut", "out0", "sink", "k0", up=False)
    topo.veth("dut", "out1", "sink", "k1", up=False)
    for (role, dev), mac in MACS.items():
        ip("link", "set", "dev", dev, "address", mac, "up", netns=topo.ns(role))
    for role in ("src", "dut", "sink"):
        for key, value in (("net.ipv4.conf.all.rp_filter", 0),
                           ("net.ipv4.conf.default.rp_filter", 0),
                           ("net.ipv6.conf.all.accept_ra", 0),
                           ("net.ipv6.conf.all.accept_dad", 0)):
            topo.sysctl(role, key, value)
    for dev in ("in0", "out0", "out1"):
        topo.sysctl("dut", f"net.ipv4.conf.{dev}.rp_filter", 0)
        topo.sysctl("dut", f"net.ipv4.conf.{dev}.send_redirects", 0)
    topo.sysctl("dut", "net.ipv4.ip_forward", 1)
    # Lone fragments wait for reassembly; expire them fast so a reused lab never mixes
    # fragments of one ruleset's packets with the next one's.
    topo.sysctl("dut", "net.ipv4.ipfrag_time", 2)
    topo.addr("dut", "in0", "100.64.0.1/30")
    topo.addr("dut", "out0", "100.64.0.5/30")
    topo.addr("dut", "out1", "100.64.0.9/30")
    topo.neigh("dut", "100.64.0.2", topo.mac("src", "s0"), "in0")
    topo.neigh("dut", "100.64.0.6", topo.mac("sink", "k0"), "out0")
    topo.neigh("dut", "100.64.0.10", topo.mac("sink", "k1"), "out1")
    topo.route("dut", "local", str(LOCAL_NET), "dev", "lo")
    topo.route("dut", "0.0.0.0/2", "via", "100.64.0.6")
    topo.route("dut", "64.0.0.0/2", "via", "100.64.0.10")
    topo.route("dut", str(SOURCE_NET), "via", "100.64.0.2")
    _ipv6(topo)
    return RouterLab(topo, topo.mac("src", "s0"), topo.mac("dut", "in0"))


def _ipv6(topo: Topology) -> None:
    """The IPv6 half of the plan (see the constants above)."""
    topo.sysctl("dut", "net.ipv6.conf.all.forwarding", 1)
    for dev, net, peer_role, peer_dev in (("in0", "fd00:64", "src", "s0"),
                                          ("out0", "fd00:65", "sink", "k0"),
                                          ("out1", "fd00:66", "sink", "k1")):
        topo.addr("dut", dev, f"{net}::1/64")
        topo.neigh("dut", f"{net}::2", MACS[peer_role, peer_dev], dev)
    topo.route("dut", "local", str(LOCAL6_NET), "dev", "lo")
    topo.route("dut", "2001:db8::/33", "via", "fd00:65::2")
    topo.route("dut", "2001:db8:8000::/33", "via", "fd00:66::2")
    topo.route("dut", str(SOURCE6_NET), "via", "fd00:64::2")
