"""`-m ipv6header [!] --header LIST [--soft]` (ip6t_ipv6header.c): the prologue walks the
chain the way the module does and stores its flag byte (backend/ipv6.py); here the
kernel's final comparison: soft → every listed header present (XOR `!` per bit),
strict → the set equals the list exactly (`!`: differs)."""

from __future__ import annotations

from bpfilter.backend.gen import I32
from bpfilter.backend.ipv6 import IH_FALSE, IH_MASKS, IH_OFF, MASK_ESP, MASK_NONE, MASK_PROTO
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.ir import Match, Rule

# libip6t_ipv6header: protocol numbers in the list → flag bits (255 = "prot")
BITS = {**IH_MASKS, 50: MASK_ESP, 59: MASK_NONE, 255: MASK_PROTO}


def match_flags(value: object) -> int:
    bits = 0
    for p in value:  # type: ignore[attr-defined]
        bits |= BITS[int(p)]
    return bits


@register
class Ipv6Header:
    module = "ipv6header"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in ("header", "soft"):
                return f"ipv6header option --{o.name} not supported"
            if o.name == "header":
                try:
                    match_flags(o.value)
                except (KeyError, TypeError, ValueError):
                    return f"ipv6header --header {o.value!r} not understood"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        ext = rc.pkt._ptr("ext")
        assert ext is not None, "ipv6header in a program without the IPv6 prologue"
        temp = g.load(ext, IH_OFF, I32, align=4)
        rc.require(b.icmp_unsigned("!=", temp, I32(IH_FALSE)))
        o = match.get("header")
        flags = match_flags(o.value) if o is not None else 0
        inv = 0xFF if o is not None and o.negated else 0
        if match.get("soft") is not None:
            x = b.and_(b.xor(b.xor(temp, I32(flags)), I32(inv)), I32(flags))
            rc.require(b.icmp_unsigned("==", x, I32(0)))
        else:
            rc.require(b.icmp_unsigned("!=" if inv else "==", temp, I32(flags)))
