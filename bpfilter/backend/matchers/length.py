"""`-m length --length a[:b]` (xt_length.c, IPv4): the IP total length in [a, b],
XOR `!`."""

from __future__ import annotations

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import port_bounds, xor_neg
from bpfilter.ir import Match, Rule


@register
class Length:
    module = "length"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name != "length":
                return f"length option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        b = rc.gen.b
        for o in match.options:
            lo, hi = port_bounds(o.value)
            t = rc.pkt.tot_len
            ok = b.and_(b.icmp_unsigned(">=", t, I32(lo)), b.icmp_unsigned("<=", t, I32(hi)))
            rc.require(xor_neg(rc, ok, o.negated))
