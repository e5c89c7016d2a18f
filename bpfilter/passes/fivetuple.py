"""Rules as boxes in a 6-dimensional packet space, for the lookup classifiers.

Why: a classifier (decision tree, hash, LPM) only needs to know which packets a rule
matches; that is exact for rules made of the generic fields plus one tcp/udp port
match, when every field is an interval. Everything else (negation, interfaces,
fragments, other matches, non-verdict targets) stays in the linear emitter.

Dimensions (all unsigned, host order): source address, destination address, IP
protocol, source port, destination port, and `l4ok`. Ports of packets that carry no
readable ports (not TCP/UDP, or a non-first fragment) read as PORT_NONE, outside
every port range a rule can name: such packets never match a port rule, exactly like
xt_tcpudp, which refuses non-first fragments. `l4ok` is 0 for packets whose TCP/UDP
header a port match could not read (first fragment shorter than the header, or the
"evil" TCP fragment at offset 1): xt_tcpudp then *drops* the packet (hotdrop) as soon
as a port rule's generic part matches. So a port rule becomes two boxes: with l4ok=1
its real ports and verdict, with l4ok=0 any port and the action HOTDROP.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpfilter.ir import Rule

DIMS = ("src", "dst", "proto", "sport", "dport", "l4ok")
NDIMS = len(DIMS)
PORT_NONE = 0x10000
FULL_LO = (0, 0, 0, 0, 0, 0)
FULL_HI = (0xFFFFFFFF, 0xFFFFFFFF, 0xFF, PORT_NONE, PORT_NONE, 1)

ACCEPT, DROP, HOTDROP = 0, 1, 2
VERDICTS = {"ACCEPT": ACCEPT, "DROP": DROP}
IPPROTO_TCP, IPPROTO_UDP = 6, 17
# Header bytes xt_tcpudp must read before it can compare ports.
L4_HEADER = {IPPROTO_TCP: 20, IPPROTO_UDP: 8}
PORT_MATCH_OPTIONS = {"sport": 3, "source-port": 3, "dport": 4, "destination-port": 4}
NOOP_MATCHES = frozenset({"comment"})


@dataclass(frozen=True)
class Box:
    """One rule (or half of a port rule) as intervals; `rule` is its position in the run."""

    lo: tuple[int, ...]
    hi: tuple[int, ...]
    action: int
    rule: int

    def covers(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        return all(a <= b for a, b in zip(self.lo, lo, strict=True)) and all(
            a >= b for a, b in zip(self.hi, hi, strict=True))


def _addr_range(field: object) -> tuple[int, int] | None:
    """[lo, hi] of a non-negated contiguous -s/-d; None when not an interval."""
    if field is None:
        return 0, 0xFFFFFFFF
    addr = getattr(field, "value", None)
    if getattr(field, "negated", False) or addr is None or addr.addr.version != 4:
        return None
    host = 0xFFFFFFFF ^ int(addr.mask)
    if host & (host + 1):  # non-contiguous mask: not an interval
        return None
    lo = int(addr.addr)
    return lo, lo | host


def rule_boxes(rule: Rule, index: int) -> tuple[Box, ...] | None:
    """The boxes of `rule` (at position `index` of its run), or None when the rule is not
    a pure interval rule with an ACCEPT/DROP verdict."""
    t = rule.target
    if t is None or t.goto or t.options or t.name not in VERDICTS:
        return None
    if rule.fragment is not None:
        return None
    for iface in (rule.in_iface, rule.out_iface):
        if iface is not None and not (iface.value in ("", "+") and not iface.negated):
            return None
    src, dst = _addr_range(rule.src), _addr_range(rule.dst)
    if src is None or dst is None:
        return None
    proto = 0
    if rule.protocol is not None and rule.protocol.value:
        if rule.protocol.negated:
            return None
        proto = int(rule.protocol.value)
    lo = [src[0], dst[0], proto, 0, 0, 0]
    hi = [src[1], dst[1], proto if proto else 0xFF, PORT_NONE, PORT_NONE, 1]
    port_match = False
    for m in rule.matches:
        if m.module in NOOP_MATCHES:
            continue
        if port_match or m.module not in ("tcp", "udp") or proto != (
                IPPROTO_TCP if m.module == "tcp" else IPPROTO_UDP):
            return None
        port_match = True
        for o in m.options:
            dim = PORT_MATCH_OPTIONS.get(o.name)
            if dim is None or o.negated:
                return None
            v = o.value
            plo, phi = (v, v) if isinstance(v, int) else (int(v.lo), int(v.hi))
            lo[dim], hi[dim] = plo, phi
    verdict = VERDICTS[t.name]
    if not port_match:
        return (Box(tuple(lo), tuple(hi), verdict, index),)
    # the port match reads a header: with the header, ports as given (a missing port
    # option is any *real* port); without it (l4ok=0), the generic part alone hotdrops.
    for dim in (3, 4):
        if hi[dim] == PORT_NONE:
            hi[dim] = 0xFFFF
    lo[5] = hi[5] = 1
    ok = Box(tuple(lo), tuple(hi), verdict, index)
    short_lo = (*lo[:3], 0, 0, 0)
    short_hi = (*hi[:3], PORT_NONE, PORT_NONE, 0)
    return ok, Box(short_lo, short_hi, HOTDROP, index)


def packet_point(src: int, dst: int, proto: int, sport: int, dport: int, l4_len: int,
                 fragoff: int) -> tuple[int, ...]:
    """Where a packet lies in the space (the BPF program computes the same)."""
    need = L4_HEADER.get(proto)
    short = need is not None and ((fragoff == 0 and l4_len < need)
                                  or (proto == IPPROTO_TCP and fragoff == 1))
    has_ports = need is not None and fragoff == 0 and not short
    return (src, dst, proto, sport if has_ports else PORT_NONE,
            dport if has_ports else PORT_NONE, 0 if short else 1)
