"""`-m hl --hl-eq/--hl-lt/--hl-gt N` (ip6t_hl.c): the IPv6 hop limit compared with N;
`! --hl-eq` is the kernel's "ne" mode (the only negation ip6tables accepts)."""

from __future__ import annotations

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.ir import Match, Rule

OPS = {"hl-eq": "==", "hl-lt": "<", "hl-gt": ">"}


@register
class Hl:
    module = "hl"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in OPS or (o.negated and o.name != "hl-eq"):
                return f"hl option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g = rc.gen
        for o in match.options:
            op = "!=" if o.negated else OPS[o.name]
            rc.require(g.b.icmp_unsigned(op, g.u8(rc.pkt.ip, 7), I32(int(o.value))))
