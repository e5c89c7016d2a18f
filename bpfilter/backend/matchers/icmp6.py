"""`-p icmpv6 -m icmp6 --icmpv6-type T[/C]` (ip6_tables.c icmp6_match): non-first
fragments never match, fewer than 8 bytes of ICMPv6 header → hotdrop, then
(type == T and code in [min, max]) XOR `!`. Names arrive as (type, code range)."""

from __future__ import annotations

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import header_guard, xor_neg
from bpfilter.backend.matchers.icmp import type_code_range
from bpfilter.ir import Match, Rule

ICMP6HDR = 8


@register
class Icmp6:
    module = "icmp6"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name != "icmpv6-type":
                return f"icmp6 option --{o.name} not supported"
            try:
                type_code_range(o.value)
            except TypeError as e:
                return str(e)
        return None

    def l4_bytes(self, match: Match) -> int:
        return ICMP6HDR

    def emit(self, rc: RuleCtx, match: Match) -> None:
        header_guard(rc, ICMP6HDR)
        o = match.get("icmpv6-type")
        if o is None:
            return
        g, b = rc.gen, rc.gen.b
        t, lo, hi = type_code_range(o.value)
        typ, code = g.u8(rc.pkt.l4, 0), g.u8(rc.pkt.l4, 1)
        ok = b.icmp_unsigned("==", typ, I32(t))
        if lo > 0:
            ok = b.and_(ok, b.icmp_unsigned(">=", code, I32(lo)))
        if hi < 0xFF:
            ok = b.and_(ok, b.icmp_unsigned("<=", code, I32(hi)))
        rc.require(xor_neg(rc, ok, o.negated))
