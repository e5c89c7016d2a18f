"""Matches on per-packet kernel metadata, nf flavor only (the skb of the hook):

* `-m mark --mark V[/M]` (xt_mark): (skb->mark & M) == V, XOR `!`. At the filter
  hooks the mark is what mangle (and earlier hooks) left, exactly what xt_mark reads.
* `-m pkttype --pkt-type T` (xt_pkttype): skb->pkt_type, where PACKET_LOOPBACK counts
  as multicast for a multicast IPv4 destination and as broadcast otherwise; XOR `!`.
* `-m ttl` (xt_ttl, IPv4): eq / ne (`! --ttl-eq`) / lt / gt on the header's TTL. nf
  only because at FORWARD the kernel has already decremented the TTL (ip_forward
  does it before the hook) while an ingress program sees the original.
"""

from __future__ import annotations

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import xor_neg
from bpfilter.backend.matchers._skb import need_skb, skb_bitfield_byte, skb_u32
from bpfilter.ir import Match, Rule

PACKET_BROADCAST, PACKET_MULTICAST, PACKET_LOOPBACK = 1, 2, 5


class _NfMeta:
    nf_only = True

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0


@register
class Mark(_NfMeta):
    module = "mark"

    def emit(self, rc: RuleCtx, match: Match) -> None:
        b = rc.gen.b
        skb = need_skb(rc, "-m mark")
        mark = skb_u32(rc, skb, "mark")
        for o in match.options:
            eq = b.icmp_unsigned("==", b.and_(mark, I32(o.value.mask)), I32(o.value.value))
            rc.require(xor_neg(rc, eq, o.negated))


@register
class Pkttype(_NfMeta):
    module = "pkttype"

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        skb = need_skb(rc, "-m pkttype")
        byte, shift = skb_bitfield_byte(rc, skb, "pkt_type")
        raw = b.and_(b.lshr(byte, I32(shift)), I32(7))  # __u8 pkt_type:3
        mcast = b.icmp_unsigned("==", b.and_(g.u8(rc.pkt.ip, 16), I32(0xF0)), I32(0xE0))
        loop = b.select(mcast, I32(PACKET_MULTICAST), I32(PACKET_BROADCAST))
        kind = b.select(b.icmp_unsigned("==", raw, I32(PACKET_LOOPBACK)), loop, raw)
        for o in match.options:
            rc.require(xor_neg(rc, b.icmp_unsigned("==", kind, I32(o.value)), o.negated))


@register
class Ttl(_NfMeta):
    module = "ttl"

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        need_skb(rc, "-m ttl")
        ttl = g.u8(rc.pkt.ip, 8)
        for o in match.options:
            op = {"ttl-eq": "!=" if o.negated else "==", "ttl-lt": "<", "ttl-gt": ">"}[o.name]
            rc.require(b.icmp_unsigned(op, ttl, I32(o.value)))
