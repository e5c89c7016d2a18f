"""`-m iprange --src-range/--dst-range A-B` (xt_iprange.c, IPv4): host-order
compare lo <= addr <= hi, XOR `!` per option."""

from __future__ import annotations

import ipaddress
from typing import Any

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import xor_neg
from bpfilter.ir import Match, Rule

OFFSETS = {"src-range": 12, "dst-range": 16}


def bounds(value: Any) -> tuple[int, int]:
    """(lo, hi) host-order ints from an (lo, hi) pair or an object with lo/hi,
    min/max or start/end."""
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = value
    else:
        for a, z in (("lo", "hi"), ("min", "max"), ("start", "end"), ("first", "last")):
            if hasattr(value, a):
                lo, hi = getattr(value, a), getattr(value, z)
                break
        else:
            raise TypeError(f"unknown iprange value {value!r}")
    return int(ipaddress.IPv4Address(lo)), int(ipaddress.IPv4Address(hi))


@register
class IpRange:
    module = "iprange"

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in OFFSETS:
                return f"iprange option --{o.name} not supported"
            try:
                bounds(o.value)
            except (TypeError, ValueError) as e:
                return str(e)
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        for o in match.options:
            lo, hi = bounds(o.value)
            off = OFFSETS[o.name]
            addr = b.or_(b.shl(g.be16(rc.pkt.ip, off), I32(16)), g.be16(rc.pkt.ip, off + 2))
            ok = b.and_(b.icmp_unsigned(">=", addr, I32(lo)), b.icmp_unsigned("<=", addr, I32(hi)))
            rc.require(xor_neg(rc, ok, o.negated))
