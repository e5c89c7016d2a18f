"""`-m multiport --sports/--dports/--ports` (xt_multiport.c, revision 1): non-first
fragments never match, fewer than 4 L4 bytes → hotdrop; matches when any listed port
or range contains the port (either port for --ports), XOR `!`."""

from __future__ import annotations

from typing import Any

from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import any_of, header_guard, in_range, port_bounds, xor_neg
from bpfilter.ir import Match, Rule

PORTS_HDR = 4
WHICH = {
    "source-ports": (0,), "sports": (0,),
    "destination-ports": (2,), "dports": (2,),
    "ports": (0, 2),
}


def port_list(value: Any) -> list[tuple[int, int]]:
    if isinstance(value, (list, tuple)) and not (
            len(value) == 2 and all(isinstance(x, int) for x in value)):
        return [port_bounds(v) for v in value]
    return [port_bounds(value)]


@register
class Multiport:
    module = "multiport"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        if len(match.options) != 1 or match.options[0].name not in WHICH:
            return "multiport: exactly one of --sports/--dports/--ports expected"
        return None

    def l4_bytes(self, match: Match) -> int:
        return PORTS_HDR

    def emit(self, rc: RuleCtx, match: Match) -> None:
        header_guard(rc, PORTS_HDR)
        o = match.options[0]
        g = rc.gen
        ports = [g.be16(rc.pkt.l4, off) for off in WHICH[o.name]]
        hits = [in_range(rc, p, lo, hi) for lo, hi in port_list(o.value) for p in ports]
        rc.require(xor_neg(rc, any_of(rc, hits), o.negated))
