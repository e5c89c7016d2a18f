"""`-p icmp` / `-m icmp --icmp-type` (ip_tables.c icmp_match): non-first fragments never
match, fewer than 8 bytes of ICMP header → hotdrop; type 255 ("any") matches every
type, so `! --icmp-type any` matches nothing."""

from __future__ import annotations

from typing import Any

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import header_guard, xor_neg
from bpfilter.ir import Match, Rule

ICMPHDR = 8
ANY_TYPE = 0xFF


def type_code_range(value: Any) -> tuple[int, int, int]:
    """(type, code_min, code_max) from the icmp extension's value."""
    if isinstance(value, int):
        return value, 0, 0xFF
    if isinstance(value, tuple):
        if len(value) == 3:
            return int(value[0]), int(value[1]), int(value[2])
        if len(value) == 2:
            t, c = value
            if isinstance(c, tuple):
                return int(t), int(c[0]), int(c[1])
            return int(t), int(c), int(c)
    for t, lo, hi in (("type", "code_min", "code_max"), ("type", "min_code", "max_code"),
                      ("icmp_type", "code_min", "code_max"), ("type", "code_lo", "code_hi")):
        if hasattr(value, t) and hasattr(value, lo):
            return int(getattr(value, t)), int(getattr(value, lo)), int(getattr(value, hi))
    raise TypeError(f"unknown --icmp-type value {value!r}")


class TypeCodeMatch:
    """`--icmp-type` and `--icmpv6-type` compile alike (icmp_match / icmp6_match): one
    header guard, then (type == T and code in [min, max]) XOR `!`. Subclasses name the
    module, its option and, for IPv4, the "any" type that matches every packet."""

    module: str
    option: str
    any_type: int | None = None

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name != self.option:
                return f"{self.module} option --{o.name} not supported"
            try:
                type_code_range(o.value)
            except TypeError as e:
                return str(e)
        return None

    def l4_bytes(self, match: Match) -> int:
        return ICMPHDR

    def emit(self, rc: RuleCtx, match: Match) -> None:
        header_guard(rc, ICMPHDR)
        o = match.get(self.option)
        if o is None:
            return
        g, b = rc.gen, rc.gen.b
        t, lo, hi = type_code_range(o.value)
        if t == self.any_type:
            ok = b.icmp_unsigned("==", I32(0), I32(0))
        else:
            typ, code = g.u8(rc.pkt.l4, 0), g.u8(rc.pkt.l4, 1)
            ok = b.icmp_unsigned("==", typ, I32(t))
            if lo > 0:
                ok = b.and_(ok, b.icmp_unsigned(">=", code, I32(lo)))
            if hi < 0xFF:
                ok = b.and_(ok, b.icmp_unsigned("<=", code, I32(hi)))
        rc.require(xor_neg(rc, ok, o.negated))


@register
class Icmp(TypeCodeMatch):
    module = "icmp"
    option = "icmp-type"
    any_type = ANY_TYPE
