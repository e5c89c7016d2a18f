"""IPv6 flavors: the IPv4 flavors' hooks, verdicts and maps with an IPv6 prologue.

nf (all of INPUT/FORWARD/OUTPUT, and the companions of xdp/tc) reads the packet at the
chain's own hook and walks the extension headers like ip6tables (ipv6.py): exact.

xdp / tc ingress decide only "plain" packets and hand every other one on untouched to
the nf companion at INPUT/FORWARD, which decides it at the real hook. Plain (see
`plain6`): no extension header right after the IPv6 header, hop limit > 1, and
ordinary unicast addresses on both ends (not ::, ::1, multicast, link-local). That
keeps neighbor discovery, MLD, DAD, router advertisements, fragments and every chain
the walk would have to follow at the exact hook, so they meet INPUT/FORWARD exactly
when they do with ip6tables, and ingress needs no walk at all. Plain packets are
classified with bpf_fib_lookup(AF_INET6) like IPv4 (SUCCESS → FORWARD with the FIB's
egress as -o; local/anycast or forwarding off → INPUT; reject routes → pass, the kernel
drops them before any chain; FRAG_NEEDED → pass, IPv6 routers never fragment and
ip6_forward answers "packet too big" before FORWARD).

On tc, "pass" returns TC_ACT_UNSPEC (TCX_NEXT): the next program attached to the
interface (e.g. the IPv4 table's) still runs, and at the end of the chain the packet
goes on; IPv4 frames are always passed that way, so both families share a TCX hook.
"""

from __future__ import annotations

from dataclasses import replace

from llvmlite import ir

from bpfilter.backend.flavors import (
    BPF_FIB_LKUP_RET_FWD_DISABLED,
    BPF_FIB_LKUP_RET_NOT_FWDED,
    BPF_FIB_LKUP_RET_SUCCESS,
    BPF_FIB_LOOKUP_SKIP_NEIGH,
    ETH_HLEN,
    FIB_PARAMS_SIZE,
    ChainEmitter,
    Flavor,
    IngressFlavor,
    Needs,
    NfCompanionFlavor,
    NfFlavor,
    NfOutputFlavor,
    TcFlavor,
    XdpFlavor,
    _with_names,
    decide_unless_ingress_seen,
    mark_ingress_seen,
    nf_read_header,
)
from bpfilter.backend.gen import (
    I8,
    I16,
    I32,
    I64,
    PTR,
    BPF_FUNC_fib_lookup,
    Gen,
)
from bpfilter.backend.ipv6 import FIND_EXT, IP6HDR, Packet6, parse_ipv6
from bpfilter.backend.packet import IFNAMSIZ

ETH_P_IPV6 = 0x86DD
AF_INET6 = 10
TC_ACT_UNSPEC = -1


def plain6(g: Gen, ip: ir.Value) -> ir.Value:
    """i1: ingress may decide this packet (module docstring); the same test runs in the
    nf companions, so what ingress hands on is decided there."""
    b = g.b
    nh = g.u8(ip, 6)
    ok = b.icmp_unsigned(">", g.u8(ip, 7), I32(1))
    for e in FIND_EXT:
        ok = b.and_(ok, b.icmp_unsigned("!=", nh, I32(e)))
    for off in (8, 24):
        first = g.u8(ip, off)
        second = g.u8(ip, off + 1)
        ok = b.and_(ok, b.icmp_unsigned("!=", first, I32(0xFF)))  # multicast
        ll = b.and_(b.icmp_unsigned("==", first, I32(0xFE)),
                    b.icmp_unsigned("==", b.and_(second, I32(0xC0)), I32(0x80)))
        ok = b.and_(ok, b.not_(ll))  # fe80::/10
        # :: and ::1 (and all of ::/96 with the first 12 bytes zero: IPv4-compatible)
        hi = b.or_(g.load(ip, off, I64, align=8), b.zext(g.load(ip, off + 8, I32, align=8), I64))
        ok = b.and_(ok, b.icmp_unsigned("!=", hi, I64(0)))
        mapped = b.and_(b.icmp_unsigned("==", g.load(ip, off, I64, align=8), I64(0)),
                        b.icmp_unsigned("==", g.be16(ip, off + 10), I32(0xFFFF)))
        ok = b.and_(ok, b.not_(mapped))  # ::ffff:0:0/96 (ip6_rcv_core drops it)
    return ok


def _want_ipv6header(emit_chain: ChainEmitter) -> bool:
    """Whether any rule of the table uses -m ipv6header (its walk costs code)."""
    plan = getattr(getattr(emit_chain, "__self__", None), "plan", None)
    if plan is None:
        return True
    return any(m.module == "ipv6header" for c in plan.table.chains for r in c.rules
               for m in r.matches)


class Nf6Mixin:
    """The nf prologue for IPv6 (mixed into NfFlavor and its companions)."""

    def emit_prologue(self, g: Gen, needs: Needs, chains: tuple[str, ...],
                      emit_chain: ChainEmitter, pass_blk: ir.Block) -> None:
        b = g.b
        state, skb, ip, read = nf_read_header(g, IP6HDR, "ip6", pass_blk)
        g.require(b.icmp_unsigned("==", b.lshr(g.u8(ip, 0), I32(4)), I32(6)), pass_blk, "v6")
        self.gate6(g, state, ip, pass_blk)
        pkt = parse_ipv6(g, ip, read, needs.l4_bytes, _want_ipv6header(emit_chain), pass_blk)
        nf: NfFlavor = self  # type: ignore[assignment]
        in_name = nf._devname(g, state, "in") if needs.in_name else None
        out_name = nf._devname(g, state, "out") if needs.out_name else None
        (chain,) = chains
        # the skb pointer: nf-only matchers (conntrack, state, mark) read it
        emit_chain(chain, replace(_with_names(pkt, in_name, out_name), skb=skb))

    def gate6(self, g: Gen, state: ir.Value, ip: ir.Value, pass_blk: ir.Block) -> None:
        """Which packets this program decides (all: it implements its chain alone)."""


class Nf6Flavor(Nf6Mixin, NfFlavor):
    """BPF_PROG_TYPE_NETFILTER for NFPROTO_IPV6 at the chain's own hook: exact."""

    family = 6


class Nf6OutputFlavor(Nf6Mixin, NfOutputFlavor):
    family = 6


class Nf6CompanionFlavor(Nf6Mixin, NfCompanionFlavor):
    """INPUT/FORWARD companions of an IPv6 xdp/tc program: decide what ingress handed
    on — packets that are not plain6, and packets from interfaces without the
    ingress program (ingress_seen unset)."""

    family = 6

    def gate6(self, g: Gen, state: ir.Value, ip: ir.Value, pass_blk: ir.Block) -> None:
        from bpfilter.loader import btf

        b = g.b
        decide = g.block("decide")
        g.branch_if(b.not_(plain6(g, ip)), decide, "plain")
        # reassembled by nf_defrag_ipv6 (conntrack): ingress only saw the fragments
        skb = g.load(g.func.args[0], 8, PTR, align=8)
        cb = btf.struct_member_offset("sk_buff", "cb")
        fms = btf.struct_member_offset("inet6_skb_parm", "frag_max_size")
        reasm = g.load(skb, cb + fms, I16, align=2)
        g.branch_if(b.icmp_unsigned("!=", reasm, I16(0)), decide, "notreasm")
        decide_unless_ingress_seen(g, state, decide)
        b.branch(pass_blk)
        g.at(decide)


class Ingress6Mixin:
    """xdp/tc ingress prologue for IPv6 (module docstring)."""

    family = 6

    def emit_prologue(self, g: Gen, needs: Needs, chains: tuple[str, ...],
                      emit_chain: ChainEmitter, pass_blk: ir.Block) -> None:
        fl: IngressFlavor = self  # type: ignore[assignment]
        b = g.b
        ctx = g.func.args[0]
        ifindex = fl.ifindex(g, ctx)
        mark_ingress_seen(g, ifindex, pass_blk)
        host_unicast = fl.host_checks(g, ctx, pass_blk)
        buf = g.stack(2 + ETH_HLEN + IP6HDR, "hdr")
        eth = g.ptr(buf, 2)
        rc = fl.load_bytes(g, ctx, I64(0), eth, I64(ETH_HLEN + IP6HDR))
        g.require(b.icmp_signed("==", rc, ir.Constant(rc.type, 0)), pass_blk, "hdr")
        g.require(b.icmp_unsigned("==", g.be16(eth, 12), I32(ETH_P_IPV6)), pass_blk, "ipv6")
        if host_unicast is None:
            host_unicast = b.icmp_unsigned("==", b.and_(g.u8(eth, 0), I32(1)), I32(0))
        ip = g.ptr(buf, 2 + ETH_HLEN)
        # ip6_rcv_core: version 6, the payload inside the frame (else the kernel drops)
        g.require(b.icmp_unsigned("==", b.lshr(g.u8(ip, 0), I32(4)), I32(6)), pass_blk, "v6")
        avail = b.sub(fl.frame_len(g, ctx), I32(ETH_HLEN))
        tot = b.add(g.be16(ip, 4), I32(IP6HDR))
        g.require(b.icmp_unsigned("<=", tot, avail), pass_blk, "inframe")
        g.require(plain6(g, ip), pass_blk, "plain6")

        def read(off: ir.Value, dst: ir.Value, n: ir.Value) -> ir.Value:
            return fl.load_bytes(g, ctx, b.add(off, I64(ETH_HLEN)), dst, n)

        pkt = parse_ipv6(g, ip, read, needs.l4_bytes, _want_ipv6header(emit_chain), pass_blk,
                         walk=False)
        in_name = fl._ifname(g, ifindex, pass_blk) if needs.in_name else None
        zero_name = g.stack(IFNAMSIZ, "noname") if needs.out_name else None

        input_blk, forward_blk = g.block("input"), g.block("forward")
        fib = g.stack(FIB_PARAMS_SIZE, "fib")
        b.store(I8(AF_INET6), g.ptr(fib, 0))
        b.store(b.trunc(pkt.proto, I8), g.ptr(fib, 1))
        b.store(ifindex, g.ptr(fib, 8), align=4)
        # flowinfo: the first 4 header bytes without the version (network order)
        b.store(b.and_(g.load(ip, 0, I32, align=8), I32(0xFFFFFF0F)), g.ptr(fib, 12), align=4)
        for i in range(0, 16, 8):
            b.store(g.load(ip, 8 + i, I64, align=8), g.ptr(fib, 16 + i), align=4)
            b.store(g.load(ip, 24 + i, I64, align=8), g.ptr(fib, 32 + i), align=4)
        ret = g.helper(BPF_FUNC_fib_lookup, I64,
                       [ctx, fib, I64(FIB_PARAMS_SIZE), I64(BPF_FIB_LOOKUP_SKIP_NEIGH)])
        sw = b.switch(ret, pass_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_SUCCESS), forward_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_NOT_FWDED), input_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_FWD_DISABLED), input_blk)

        g.at(input_blk)
        if "INPUT" in chains:
            emit_chain("INPUT", _with_names(pkt, in_name, zero_name))
        else:
            b.branch(pass_blk)
        g.at(forward_blk)
        if "FORWARD" in chains:
            g.require(host_unicast, pass_blk, "l2host")
            out_name = None
            if needs.out_name:
                out_name = fl._ifname(g, g.load(fib, 8, I32, align=4), pass_blk)
            emit_chain("FORWARD", _with_names(pkt, in_name, out_name))
        else:
            b.branch(pass_blk)


class Xdp6Flavor(Ingress6Mixin, XdpFlavor):
    """XDP for the IPv6 table: frames of other EtherTypes → XDP_PASS."""


class Tc6Flavor(Ingress6Mixin, TcFlavor):
    """TC ingress for the IPv6 table; accept and pass are TC_ACT_UNSPEC (TCX_NEXT) so
    programs after it on the same hook (the IPv4 table's) still see the packet."""

    accept = TC_ACT_UNSPEC


FLAVORS6: dict[str, Flavor] = {f.name: f for f in (Xdp6Flavor(), Tc6Flavor(), Nf6Flavor())}
PROGRAM_SETS6: dict[str, tuple[Flavor, ...]] = {
    "xdp": (FLAVORS6["xdp"], Nf6CompanionFlavor(), Nf6OutputFlavor()),
    "tc": (FLAVORS6["tc"], Nf6CompanionFlavor(), Nf6OutputFlavor()),
    "nf": (FLAVORS6["nf"],),
}

__all__ = ["FLAVORS6", "PROGRAM_SETS6", "Packet6", "plain6"]
