"""`-m addrtype --dst-type T[,T...]` (xt_addrtype rev 1, IPv4, no --limit-iface-*), nf
flavor at INPUT and FORWARD only.

The kernel match is inet_dev_addr_type(net, NULL, daddr): 0.0.0.0/8 and
255.255.255.255 → BROADCAST, 224.0.0.0/4 → MULTICAST, else the type of the longest
match in the *local* routing table (LOCAL, BROADCAST, ...), UNICAST when none. An nf
program cannot look the FIB up, but at these hooks the kernel already did: the
packet's route (skb dst, `struct rtable`.rt_type) came from fib_lookup(), whose first
policy rule is the local table. So, with the standard routing policy —
  (A1) the `lookup local` rule comes first (`ip rule`, pref 0, the default), and
  (A2) local/broadcast/anycast routes live in the local table (where iproute2 puts
       them unless told otherwise),
the type is exact:
* INPUT: the route is the local table's answer for daddr: LOCAL or BROADCAST
  (ANYCAST and other types never reach INPUT: ip_route_input drops them as martians);
  rt_type is that type. Early-demuxed and looped-back packets carry a route of the
  same type for the same address.
* FORWARD: only RTN_UNICAST results are forwarded, so the local table had no LOCAL /
  BROADCAST / ANYCAST answer: UNICAST (forwarded multicast is caught by the address).
OUTPUT is not compiled (a socket bound to a device makes the output lookup skip local
routes of other devices, so its route can differ from the local-table lookup): the
planner keeps OUTPUT chains with addrtype in netfilter. --src-type needs a lookup of
the source address the hook never made: handed to netfilter.
"""

from __future__ import annotations

from bpfilter.backend.gen import I8, I16, I32, I64, PTR
from bpfilter.backend.matchers import RuleCtx, register
from bpfilter.backend.matchers._l4 import xor_neg
from bpfilter.backend.matchers._skb import need_skb, read_kernel, shared_stack, skb_u64
from bpfilter.frontend.extensions.addrtype import type_mask
from bpfilter.ir import Match, Rule
from bpfilter.loader import btf

RTN_UNICAST, RTN_BROADCAST, RTN_MULTICAST = 1, 3, 5
NF_INET_FORWARD = 2
SKB_DST_NOREF = 1


@register
class Addrtype:
    module = "addrtype"
    nf_only = True
    not_at = frozenset({"OUTPUT"})  # plan.py keeps these chains in netfilter

    def unsupported(self, match: Match, rule: Rule) -> str | None:
        for o in match.options:
            if o.name != "dst-type":
                return f"addrtype --{o.name} needs a routing lookup the hook did not make"
        return None

    def l4_bytes(self, match: Match) -> int:
        return 0

    def emit(self, rc: RuleCtx, match: Match) -> None:
        g, b = rc.gen, rc.gen.b
        skb = need_skb(rc, "-m addrtype")
        ip = rc.pkt.ip
        first = g.u8(ip, 16)
        lbcast = b.icmp_unsigned("==", g.raw32(ip, 16), I32(0xFFFFFFFF))
        bcast = b.or_(lbcast, b.icmp_unsigned("==", first, I32(0)))
        mcast = b.icmp_unsigned("==", b.and_(first, I32(0xF0)), I32(0xE0))
        state = g.load(g.func.args[0], 0, PTR, align=8)  # bpf_nf_ctx.state
        hook = g.b.zext(g.load(state, btf.struct_member_offset("nf_hook_state", "hook"), I8),
                        I32)
        dst = b.and_(skb_u64(rc, skb, "_skb_refdst"), I64(~SKB_DST_NOREF & (2**64 - 1)))
        buf = shared_stack(rc, 8, "rttype")
        b.store(I64(0), buf, align=8)
        off = btf.struct_member_offset("rtable", "rt_type")
        read_kernel(rc, buf, b.add(dst, I64(off)), 2)  # zero (UNSPEC) if it fails
        rt_type = b.zext(g.load(buf, 0, I16, align=8), I32)
        routed = b.select(b.icmp_unsigned("==", hook, I32(NF_INET_FORWARD)), I32(RTN_UNICAST),
                          rt_type)
        typ = b.select(bcast, I32(RTN_BROADCAST), b.select(mcast, I32(RTN_MULTICAST), routed))
        bit = b.shl(I32(1), b.and_(typ, I32(31)))
        for o in match.options:
            hit = b.icmp_unsigned("!=", b.and_(bit, I32(type_mask(o.value))), I32(0))
            rc.require(xor_neg(rc, hit, o.negated))
