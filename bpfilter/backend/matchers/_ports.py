"""Port checks shared by the tcp and udp matches (xt_tcpudp's port_match)."""

from __future__ import annotations

from bpfilter.backend.matchers import RuleCtx
from bpfilter.backend.matchers._l4 import in_range, opt, port_bounds, xor_neg
from bpfilter.ir import Match

SPORT = ("source-port", "sport", "source-ports")
DPORT = ("destination-port", "dport", "destination-ports")
PORT_OPTIONS = frozenset(SPORT + DPORT)


def emit_ports(rc: RuleCtx, match: Match) -> None:
    """(lo <= port <= hi) XOR negated, source port at L4 offset 0, destination at 2."""
    g = rc.gen
    for names, off in ((SPORT, 0), (DPORT, 2)):
        o = opt(match, *names)
        if o is None:
            continue
        lo, hi = port_bounds(o.value)
        if lo == 0 and hi == 0xFFFF and not o.negated:
            continue
        port = g.be16(rc.pkt.l4, off)
        rc.require(xor_neg(rc, in_range(rc, port, lo, hi), o.negated))
