"""`-m hbh`, `-m dst`, `-m rt`, `-m frag`: the first extension header of one type, as
ipv6_find_hdr(target) finds it (the prologue records it: backend/ipv6.py).

Shared kernel shape (ip6t_hbh.c, ip6t_rt.c, ip6t_frag.c): -ENOENT → no match; any
other error → hotdrop; the fixed part of the header unreadable → hotdrop. Then:
* hbh/dst: a header longer than the rest of the packet → hotdrop; `--hbh-len N`
  compares N with the header's length in bytes, XOR `!`. Option lists (--hbh-opts)
  are not compiled.
* rt: the same length rule; --rt-segsleft range, --rt-len, --rt-type, each XOR its `!`.
  Type-0 specifics (--rt-0-*) are not compiled.
* frag: --fragid range XOR `!`; --fragres (reserved byte or the two reserved flag
  bits set → no match); --fragfirst (offset != 0 → no match); --fragmore /
  --fraglast (the M flag). --fraglen is parsed by ip6tables but never compared by
  the kernel.
"""

from __future__ import annotations

from llvmlite import ir

from bpfilter.backend.gen import I32
from bpfilter.backend.ipv6 import (
    NEXTHDR_DEST,
    NEXTHDR_FRAGMENT,
    NEXTHDR_HOP,
    NEXTHDR_ROUTING,
    ST_EBADMSG,
    ST_FOUND,
    ext_slot,
)
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import port_bounds, xor_neg
from bpfilter.ir import Match, Rule


def _ext(rc: RuleCtx) -> ir.Value:
    p = rc.pkt._ptr("ext")  # Packet6.ext, through PacketView's opaque pointer
    if p is None:
        raise AssertionError("IPv6 matcher in a program without the IPv6 prologue")
    return p


def find_header(rc: RuleCtx, target: int, need: int) -> ir.Value:
    """Guard for ipv6_find_hdr(target) + skb_header_pointer(need bytes); returns a
    pointer to the header's first 8 bytes."""
    g, b = rc.gen, rc.gen.b
    ext = _ext(rc)
    base = ext_slot(target)
    status = g.load(ext, base, I32, align=4)
    g.branch_if(b.icmp_unsigned("==", status, I32(ST_EBADMSG)), rc.hotdrop, "extok")
    rc.require(b.icmp_unsigned("==", status, I32(ST_FOUND)))
    if need <= 8:
        short = b.icmp_unsigned("<", g.load(ext, base + 4, I32, align=4), I32(need))
    else:
        short = b.icmp_signed("<", g.load(ext, base + 8, I32, align=4), I32(need))
    g.branch_if(short, rc.hotdrop, "exthdr")
    return g.ptr(ext, base + 16)


def fits(rc: RuleCtx, target: int, hdrlen: ir.Value) -> None:
    """`if (skb->len - ptr < hdrlen) { par->hotdrop = true; return false; }` (hbh/dst
    and rt hotdrop a header longer than the packet since "netfilter: ip6t: hotdrop
    truncated headers"; found by the differential suite against this kernel)."""
    g, b = rc.gen, rc.gen.b
    remaining = g.load(_ext(rc), ext_slot(target) + 8, I32, align=4)
    g.branch_if(b.icmp_signed("<", remaining, hdrlen), rc.hotdrop, "extfits")


def optlen(rc: RuleCtx, hdr: ir.Value) -> ir.Value:
    g, b = rc.gen, rc.gen.b
    return b.shl(b.add(g.u8(hdr, 1), I32(1)), I32(3))


class _Opts:
    module: str
    target: int

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name != f"{self.module}-len":
                return f"{self.module} option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        hdr = find_header(rc, self.target, 2)
        length = optlen(rc, hdr)
        fits(rc, self.target, length)
        o = match.get(f"{self.module}-len")
        if o is not None:
            eq = rc.gen.b.icmp_unsigned("==", length, I32(int(o.value)))
            rc.require(xor_neg(rc, eq, o.negated))


@register
class Hbh(_Opts):
    module = "hbh"
    target = NEXTHDR_HOP


@register
class Dst(_Opts):
    module = "dst"
    target = NEXTHDR_DEST


@register
class Rt:
    module = "rt"
    OPTIONS = ("rt-type", "rt-segsleft", "rt-len")

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in self.OPTIONS:
                return f"rt option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        hdr = find_header(rc, NEXTHDR_ROUTING, 4)
        length = optlen(rc, hdr)
        fits(rc, NEXTHDR_ROUTING, length)
        for name, value in (("rt-segsleft", g.u8(hdr, 3)), ("rt-len", length),
                            ("rt-type", g.u8(hdr, 2))):
            o = match.get(name)
            if o is None:
                continue
            lo, hi = port_bounds(o.value)
            ok = b.and_(b.icmp_unsigned(">=", value, I32(lo)),
                        b.icmp_unsigned("<=", value, I32(hi)))
            rc.require(xor_neg(rc, ok, o.negated))


@register
class Frag:
    module = "frag"
    OPTIONS = ("fragid", "fraglen", "fragres", "fragfirst", "fragmore", "fraglast")

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name not in self.OPTIONS:
                return f"frag option --{o.name} not supported"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        hdr = find_header(rc, NEXTHDR_FRAGMENT, 8)
        off = g.be16(hdr, 2)
        o = match.get("fragid")
        if o is not None:
            lo, hi = port_bounds(o.value)
            ident = b.or_(b.shl(g.be16(hdr, 4), I32(16)), g.be16(hdr, 6))
            ok = b.and_(b.icmp_unsigned(">=", ident, I32(lo)),
                        b.icmp_unsigned("<=", ident, I32(hi)))
            rc.require(xor_neg(rc, ok, o.negated))
        if match.get("fragres") is not None:
            rc.require(b.icmp_unsigned("==", g.u8(hdr, 1), I32(0)))
            rc.require(b.icmp_unsigned("==", b.and_(off, I32(6)), I32(0)))
        if match.get("fragfirst") is not None:
            rc.require(b.icmp_unsigned("==", b.and_(off, I32(0xFFF8)), I32(0)))
        if match.get("fragmore") is not None:
            rc.require(b.icmp_unsigned("!=", b.and_(off, I32(1)), I32(0)))
        if match.get("fraglast") is not None:
            rc.require(b.icmp_unsigned("==", b.and_(off, I32(1)), I32(0)))

