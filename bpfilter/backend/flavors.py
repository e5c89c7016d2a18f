"""Per-hook differences, one class per flavor: context layout, how packet bytes are
read, verdict numbers, and which built-in chains a program implements.

Everything else (the chain walk, the matchers) is shared: each flavor's prologue copies
the IPv4 header and the first L4 bytes into stack buffers and hands a `Packet` to the
chain emitter.

Ingress flavors (xdp, tc) run before routing, so they classify each packet the way
ip_route_input() will, with bpf_fib_lookup (see `IngressFlavor.emit_prologue`), and run
INPUT or FORWARD accordingly; packets whose class they cannot prove are passed on
untouched ("pass"). nf programs run at the chain's own netfilter hook: exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from bpfilter.backend.gen import (
    I8,
    I16,
    I32,
    I64,
    PTR,
    BPF_FUNC_dynptr_read,
    BPF_FUNC_fib_lookup,
    BPF_FUNC_map_lookup_elem,
    BPF_FUNC_skb_load_bytes,
    BPF_FUNC_xdp_get_buff_len,
    BPF_FUNC_xdp_load_bytes,
    Gen,
)
from bpfilter.backend.packet import IFNAMSIZ, L4_MAX, Packet
from bpfilter.loader import syscall as sc

ETH_HLEN = 14
ETH_P_IP = 0x0800
IPHDR = 20
AF_INET = 2

# bpf_fib_lookup() return codes and flags (UAPI).
BPF_FIB_LKUP_RET_SUCCESS = 0
BPF_FIB_LKUP_RET_NOT_FWDED = 4
BPF_FIB_LKUP_RET_FWD_DISABLED = 5
BPF_FIB_LKUP_RET_FRAG_NEEDED = 8
BPF_FIB_LOOKUP_SKIP_NEIGH = 1 << 2
FIB_PARAMS_SIZE = 64

IFNAMES_MAP = "ifnames"  # xdp/tc: ifindex (u32) → interface name (char[16])
# xdp/tc + nf companions: ARRAY u32 ifindex → u32, set to 1 by the ingress program for
# every interface it runs on (packets from those were decided there, unless fragments).
INGRESS_SEEN_MAP = "ingress_seen"
INGRESS_SEEN_MAX = 16384
IP_MF, IP_OFFSET = 0x2000, 0x1FFF


@dataclass(frozen=True)
class Needs:
    """What the rules of one program read, so the prologue loads only that."""

    l4_bytes: int = 0
    in_name: bool = False
    out_name: bool = False


# (chain name, packet) → emits the whole chain from the current block.
ChainEmitter = Callable[[str, Packet], None]
# (offset, buf, len) → 0 on success: how a prologue reads packet bytes
ByteReader = Callable[[ir.Value, ir.Value, ir.Value], ir.Value]


class Flavor:
    """Base: shared IPv4 header parsing; subclasses provide ctx access."""

    name: str
    section: str
    prog_type: int
    expected_attach_type: int = 0
    accept: int
    drop: int

    def programs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(program name, hook, built-in chains) of the filter table's programs."""
        raise NotImplementedError

    def maps(self, needs: Needs) -> tuple[str, ...]:
        """Names of the maps (besides "counters") the program references."""
        return ()

    def emit_prologue(self, g: Gen, needs: Needs, chains: tuple[str, ...],
                      emit_chain: ChainEmitter, pass_blk: ir.Block) -> None:
        raise NotImplementedError

    # --- shared IPv4 parsing -------------------------------------------------------
    def parse_ipv4(self, g: Gen, ip: ir.Value, avail: ir.Value | None, needs: Needs,
                   load_l4: Callable[[ir.Value, ir.Value, ir.Value], ir.Value],
                   pass_blk: ir.Block) -> Packet:
        """Validate the header as ip_rcv_core() does (else pass: the kernel drops it
        before any chain) and load the L4 bytes the rules need.

        `avail`: bytes from the IP header to the end of the frame (None: the kernel
        already trimmed the skb to tot_len). `load_l4(offset, buf, len)` → 0 on success.
        """
        b = g.b
        vihl = g.u8(ip, 0)
        g.require(b.icmp_unsigned("==", b.lshr(vihl, I32(4)), I32(4)), pass_blk, "v4")
        hl = b.shl(b.and_(vihl, I32(15)), I32(2))
        g.require(b.icmp_unsigned(">=", hl, I32(IPHDR)), pass_blk, "ihl")
        tot = g.be16(ip, 2)
        g.require(b.icmp_unsigned(">=", tot, hl), pass_blk, "totlen")
        if avail is not None:
            g.require(b.icmp_unsigned("<=", tot, avail), pass_blk, "inframe")
        l4_len = b.sub(tot, hl)
        fragoff = b.and_(g.be16(ip, 6), I32(0x1FFF))
        proto = g.u8(ip, 9)
        l4 = g.stack(L4_MAX + 4, "l4")
        if needs.l4_bytes:
            # Constant-size loads, largest that fits: a length derived from l4_len would
            # make the verifier track l4_len precisely and stop pruning states rule
            # after rule (measured: verification grew quadratically with the rules).
            first = b.icmp_unsigned("==", fragoff, I32(0))
            load_l4_tiered(g, first, l4_len, load_l4, hl, l4, needs.l4_bytes, pass_blk)
        meta = g.stack(16, "meta", zero=False)
        for i, v in enumerate((tot, l4_len, proto, fragoff)):
            b.store(v, g.ptr(meta, 4 * i), align=4)
        return Packet(ip=ip, l4=l4, tot_len=tot, l4_len=l4_len, proto=proto, fragoff=fragoff,
                      meta=meta)


def load_tiers(need: int) -> list[int]:
    """L4 load sizes to try, largest first: every size a matcher may read exactly up to
    (TCP header + options in 4-byte steps, 8 for UDP/ICMP, 4 for ports)."""
    sizes = {s for s in range(20, L4_MAX + 1, 4)} | {8, 4}
    return sorted((s for s in sizes if s <= need), reverse=True)


def load_l4_tiered(g: Gen, have_l4: ir.Value, l4_len: ir.Value, read: ByteReader,
                   off: ir.Value, l4: ir.Value, need: int, pass_blk: ir.Block) -> None:
    """Copy the L4 header (at i32 ``off``) into ``l4`` (when ``have_l4``) with the largest
    constant-size read from `load_tiers` that fits in ``l4_len``, for both families: a
    length derived from l4_len would make the verifier track it precisely and stop
    pruning states."""
    b = g.b
    done = g.block("l4done")
    nxt = g.block("l4tier")
    b.cbranch(have_l4, nxt, done)
    for size in load_tiers(need):
        g.at(nxt)
        load, nxt = g.block(f"l4load{size}"), g.block("l4tier")
        b.cbranch(b.icmp_unsigned(">=", l4_len, I32(size)), load, nxt)
        g.at(load)
        rc = read(b.zext(off, I64), l4, I64(size))
        g.require(b.icmp_signed("==", rc, ir.Constant(rc.type, 0)), pass_blk, "l4ok")
        b.branch(done)
    g.at(nxt)
    b.branch(done)
    g.at(done)


class IngressFlavor(Flavor):
    """xdp and tc ingress: one program per interface for INPUT and FORWARD.

    Classification, mirroring ip_route_input_slow() as far as a lookup can:
    * destination multicast (224/4) → INPUT: the kernel delivers it locally when the
      host joined the group and drops it otherwise (multicast forwarding by a
      routing daemon is not modelled);
    * destination 255.255.255.255 → INPUT (the kernel delivers limited broadcast
      locally before any route lookup);
    * otherwise bpf_fib_lookup(ingress ifindex, SKIP_NEIGH):
      - SUCCESS → forwarded unicast → FORWARD, with the FIB's egress ifindex as
        `-o`; but TTL <= 1 or an L2 non-unicast frame (on tc: pkt_type other than
        PACKET_HOST) → pass, since ip_forward() drops those before the FORWARD hook;
      - FRAG_NEEDED (tc only; XDP is asked without MTU check): DF set → pass
        (ip_forward answers "fragmentation needed" before the hook), else FORWARD.
        At XDP a DF packet too big for the egress MTU meets FORWARD (the kernel
        would answer it before FORWARD: only the ICMP error and counters differ);
      - NOT_FWDED (local or broadcast route; also "no route") → INPUT;
      - FWD_DISABLED (forwarding off on the ingress device: the helper checks this
        before the lookup, so it cannot tell local from not) → INPUT: the kernel
        delivers local packets to INPUT and drops every other one without any
        chain, so the fate is the same; only INPUT counters may also count
        unroutable packets the kernel would drop anyway;
      - anything else (blackhole, unreachable, prohibit, lwt) → pass: the kernel
        drops those before any chain (ip_error), so passing is exact.
    Interface names: names are the truth in iptables but the hook only knows an
    ifindex, so the program reads names from the hash map "ifnames" (u32 ifindex →
    char[16]) the loader fills for the namespace; a missing entry → pass.
    """

    def programs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [("filter_ingress", "ingress", ("INPUT", "FORWARD"))]

    def maps(self, needs: Needs) -> tuple[str, ...]:
        names = (IFNAMES_MAP,) if needs.in_name or needs.out_name else ()
        return (*names, INGRESS_SEEN_MAP)

    # subclass hooks
    def load_bytes(self, g: Gen, ctx: ir.Value, off: ir.Value, buf: ir.Value,
                   n: ir.Value) -> ir.Value:
        raise NotImplementedError

    def frame_len(self, g: Gen, ctx: ir.Value) -> ir.Value:
        raise NotImplementedError

    def ifindex(self, g: Gen, ctx: ir.Value) -> ir.Value:
        raise NotImplementedError

    # Verdict for frames of another EtherType (None: `pass`). tc: TC_ACT_UNSPEC, so a
    # program attached after this one (the other family's table, by H11) still runs.
    other_ethertype: int | None = None

    def other_ethertype_block(self, g: Gen, pass_blk: ir.Block) -> ir.Block:
        if self.other_ethertype is None:
            return pass_blk
        cur = g.b.block
        blk = g.block("otherethertype")
        g.at(blk)
        g.b.ret(I32(self.other_ethertype))
        g.at(cur)
        return blk

    def host_checks(self, g: Gen, ctx: ir.Value, pass_blk: ir.Block) -> ir.Value | None:
        """Flavor-specific early passes; returns an i1 "frame was sent to this host
        as L2 unicast" if known, else None (then the Ethernet destination decides)."""
        return None

    def emit_prologue(self, g: Gen, needs: Needs, chains: tuple[str, ...],
                      emit_chain: ChainEmitter, pass_blk: ir.Block) -> None:
        b = g.b
        ctx = g.func.args[0]
        ifindex = self.ifindex(g, ctx)
        mark_ingress_seen(g, ifindex, pass_blk)
        host_unicast = self.host_checks(g, ctx, pass_blk)
        # The frame goes 2 bytes into the buffer so the IP header is 8-aligned on the
        # stack (the verifier refuses misaligned stack loads).
        buf = g.stack(2 + ETH_HLEN + IPHDR, "hdr")
        eth = g.ptr(buf, 2)
        rc = self.load_bytes(g, ctx, I64(0), eth, I64(ETH_HLEN + IPHDR))
        g.require(b.icmp_signed("==", rc, ir.Constant(rc.type, 0)), pass_blk, "hdr")
        g.require(b.icmp_unsigned("==", g.be16(eth, 12), I32(ETH_P_IP)),
                  self.other_ethertype_block(g, pass_blk), "ipv4")
        if host_unicast is None:
            host_unicast = b.icmp_unsigned("==", b.and_(g.u8(eth, 0), I32(1)), I32(0))
        ip = g.ptr(buf, 2 + ETH_HLEN)
        avail = b.sub(self.frame_len(g, ctx), I32(ETH_HLEN))

        def load_l4(off: ir.Value, buf: ir.Value, n: ir.Value) -> ir.Value:
            return self.load_bytes(g, ctx, b.add(off, I64(ETH_HLEN)), buf, n)

        pkt = self.parse_ipv4(g, ip, avail, needs, load_l4, pass_blk)
        # Fragments: INPUT (and FORWARD when conntrack defragments) see the reassembled
        # datagram, so fragments go on to the kernel and the nf companion programs.
        g.require(b.icmp_unsigned("==", b.and_(g.be16(ip, 6), I32(IP_MF | IP_OFFSET)), I32(0)),
                  pass_blk, "notfrag")
        in_name = self._ifname(g, ifindex, pass_blk) if needs.in_name else None
        zero_name = g.stack(IFNAMSIZ, "noname") if needs.out_name else None

        input_blk, forward_blk, fib_blk = g.block("input"), g.block("forward"), g.block("fib")
        daddr = g.raw32(ip, 16)
        first = g.u8(ip, 16)
        is_mc = b.icmp_unsigned("==", b.and_(first, I32(0xF0)), I32(0xE0))
        local_bc = b.or_(is_mc, b.icmp_unsigned("==", daddr, I32(0xFFFFFFFF)))
        b.cbranch(local_bc, input_blk, fib_blk)

        g.at(fib_blk)
        fib = g.stack(FIB_PARAMS_SIZE, "fib")
        b.store(I8(AF_INET), g.ptr(fib, 0))
        b.store(b.trunc(pkt.proto, I8), g.ptr(fib, 1))
        b.store(ifindex, g.ptr(fib, 8), align=4)
        b.store(g.load(ip, 1, I8), g.ptr(fib, 12))
        b.store(g.raw32(ip, 12), g.ptr(fib, 16), align=4)
        b.store(daddr, g.ptr(fib, 32), align=4)
        ret = g.helper(BPF_FUNC_fib_lookup, I64,
                       [ctx, fib, I64(FIB_PARAMS_SIZE), I64(BPF_FIB_LOOKUP_SKIP_NEIGH)])
        sw = b.switch(ret, pass_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_SUCCESS), forward_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_NOT_FWDED), input_blk)
        sw.add_case(I64(BPF_FIB_LKUP_RET_FWD_DISABLED), input_blk)
        # tot_len 0: XDP skips the MTU check; the skb variant still checks the device MTU
        # and says FRAG_NEEDED with the egress ifindex filled in. ip_forward() sends
        # "fragmentation needed" before the FORWARD hook only for DF packets.
        frag_blk = g.block("fragneeded")
        sw.add_case(I64(BPF_FIB_LKUP_RET_FRAG_NEEDED), frag_blk)
        g.at(frag_blk)
        df = b.icmp_unsigned("!=", b.and_(g.u8(ip, 6), I32(0x40)), I32(0))
        b.cbranch(df, pass_blk, forward_blk)

        if "INPUT" in chains:
            g.at(input_blk)
            emit_chain("INPUT", _with_names(pkt, in_name, zero_name))
        else:
            g.at(input_blk)
            b.branch(pass_blk)
        g.at(forward_blk)
        if "FORWARD" in chains:
            g.require(host_unicast, pass_blk, "l2host")
            g.require(b.icmp_unsigned(">", g.u8(ip, 8), I32(1)), pass_blk, "ttl")
            out_name = None
            if needs.out_name:
                out_name = self._ifname(g, g.load(fib, 8, I32, align=4), pass_blk)
            emit_chain("FORWARD", _with_names(pkt, in_name, out_name))
        else:
            b.branch(pass_blk)

    def _ifname(self, g: Gen, ifindex: ir.Value, pass_blk: ir.Block) -> ir.Value:
        key = g.stack(4, "ifkey", zero=False)
        g.b.store(ifindex, key, align=4)
        name = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(IFNAMES_MAP), key])
        g.require(g.b.icmp_unsigned("!=", name, ir.Constant(PTR, None)), pass_blk, "ifname")
        return name


def mark_ingress_seen(g: Gen, ifindex: ir.Value, pass_blk: ir.Block) -> None:
    """ingress_seen[ifindex] = 1 (written once); an ifindex beyond the array → pass, so
    the nf companions decide that interface's packets."""
    b = g.b
    key = g.stack(4, "seenkey", zero=False)
    b.store(ifindex, key, align=4)
    seen = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(INGRESS_SEEN_MAP), key])
    g.require(b.icmp_unsigned("!=", seen, ir.Constant(PTR, None)), pass_blk, "seenslot")
    done, mark = g.block("seen"), g.block("markseen")
    b.cbranch(b.icmp_unsigned("==", b.load(seen, typ=I32, align=4), I32(0)), mark, done)
    g.at(mark)
    b.store(I32(1), seen, align=4)
    b.branch(done)
    g.at(done)


def nf_read_header(g: Gen, size: int, name: str, pass_blk: ir.Block
                   ) -> tuple[ir.Value, ir.Value, ir.Value, ByteReader]:
    """(state, skb, header copy, reader) for an nf program of either family: the first
    ``size`` bytes of skb->data (the IP header at these hooks) read through a dynptr,
    which handles non-linear skbs like skb_header_pointer; short packets → pass."""
    b = g.b
    ctx = g.func.args[0]
    state = g.load(ctx, 0, PTR, align=8)
    skb = g.load(ctx, 8, PTR, align=8)
    dptr = g.stack(16, "dynptr", zero=False)
    rc = g.kfunc("bpf_dynptr_from_skb", I32, [skb, I64(0), dptr])
    g.require(b.icmp_signed("==", rc, I32(0)), pass_blk, "dynptr")
    ip = g.stack(size, name)
    rc = g.helper(BPF_FUNC_dynptr_read, I64, [ip, I64(size), dptr, I64(0), I64(0)])
    g.require(b.icmp_signed("==", rc, I64(0)), pass_blk, f"{name}hdr")

    def read(off: ir.Value, buf: ir.Value, n: ir.Value) -> ir.Value:
        return g.helper(BPF_FUNC_dynptr_read, I64, [buf, n, dptr, off, I64(0)])

    return state, skb, ip, read


def decide_unless_ingress_seen(g: Gen, state: ir.Value, decide: ir.Block) -> None:
    """nf companions: branch to ``decide`` when the packet's input device has no ingress
    program (ingress_seen[in->ifindex] missing or 0); such packets were not decided there."""
    from bpfilter.loader import btf

    b = g.b
    dev = g.load(state, btf.struct_member_offset("nf_hook_state", "in"), PTR, align=8)
    ifindex = g.load(dev, btf.struct_member_offset("net_device", "ifindex"), I32, align=4)
    key = g.stack(4, "seenkey", zero=False)
    b.store(ifindex, key, align=4)
    seen = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(INGRESS_SEEN_MAP), key])
    g.branch_if(b.icmp_unsigned("==", seen, ir.Constant(PTR, None)), decide, "seenslot")
    g.branch_if(b.icmp_unsigned("==", b.load(seen, typ=I32, align=4), I32(0)), decide,
                "seen")


def _with_names(pkt: Packet, in_name: ir.Value | None, out_name: ir.Value | None) -> Packet:
    from dataclasses import replace

    return replace(pkt, in_name=in_name, out_name=out_name)


class XdpFlavor(IngressFlavor):
    """XDP: ctx struct xdp_md; bytes via bpf_xdp_load_bytes (works on multi-buffer
    frames too); length via bpf_xdp_get_buff_len."""

    name = "xdp"
    section = "xdp"
    prog_type = sc.BPF_PROG_TYPE_XDP
    accept, drop = 2, 1  # XDP_PASS, XDP_DROP

    def load_bytes(self, g: Gen, ctx: ir.Value, off: ir.Value, buf: ir.Value,
                   n: ir.Value) -> ir.Value:
        return g.helper(BPF_FUNC_xdp_load_bytes, I64, [ctx, off, buf, n])

    def frame_len(self, g: Gen, ctx: ir.Value) -> ir.Value:
        return g.b.trunc(g.helper(BPF_FUNC_xdp_get_buff_len, I64, [ctx]), I32)

    def ifindex(self, g: Gen, ctx: ir.Value) -> ir.Value:
        return g.load(ctx, 12, I32, align=4)  # xdp_md.ingress_ifindex


class TcFlavor(IngressFlavor):
    """TC ingress (TCX or cls_bpf direct-action): ctx struct __sk_buff; bytes via
    bpf_skb_load_bytes. Frames with an offloaded VLAN tag belong to the VLAN
    device, not this one → pass; PACKET_OTHERHOST frames are dropped by ip_rcv → pass."""

    name = "tc"
    section = "tc"
    prog_type = sc.BPF_PROG_TYPE_SCHED_CLS
    accept, drop = 0, 2  # TC_ACT_OK, TC_ACT_SHOT
    other_ethertype = -1  # TC_ACT_UNSPEC (TCX_NEXT)

    def load_bytes(self, g: Gen, ctx: ir.Value, off: ir.Value, buf: ir.Value,
                   n: ir.Value) -> ir.Value:
        return g.helper(BPF_FUNC_skb_load_bytes, I64, [ctx, off, buf, n])

    def frame_len(self, g: Gen, ctx: ir.Value) -> ir.Value:
        return g.load(ctx, 0, I32, align=4)  # __sk_buff.len

    def ifindex(self, g: Gen, ctx: ir.Value) -> ir.Value:
        return g.load(ctx, 40, I32, align=4)  # __sk_buff.ifindex

    def host_checks(self, g: Gen, ctx: ir.Value, pass_blk: ir.Block) -> ir.Value | None:
        b = g.b
        g.require(b.icmp_unsigned("==", g.load(ctx, 20, I32, align=4), I32(0)), pass_blk,
                  "novlan")  # __sk_buff.vlan_present
        pkt_type = g.load(ctx, 4, I32, align=4)  # __sk_buff.pkt_type
        g.require(b.icmp_unsigned("!=", pkt_type, I32(3)), pass_blk, "nototherhost")
        return b.icmp_unsigned("==", pkt_type, I32(0))  # PACKET_HOST


class NfFlavor(Flavor):
    """BPF_PROG_TYPE_NETFILTER at the chain's own hook: exact placement.

    ctx struct bpf_nf_ctx {state, skb}; skb->data is the IP header at these hooks.
    Bytes via the kfunc bpf_dynptr_from_skb + helper bpf_dynptr_read (handles
    non-linear skbs like skb_header_pointer). Interface names are read from
    state->in / state->out (NULL reads as zeros, like iptables' nulldevname) at
    offsets from vmlinux BTF.
    """

    name = "nf"
    section = "netfilter"
    prog_type = sc.BPF_PROG_TYPE_NETFILTER
    expected_attach_type = sc.BPF_NETFILTER
    accept, drop = 1, 0  # NF_ACCEPT, NF_DROP

    def programs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(f"filter_{c.lower()}", c, (c,)) for c in ("INPUT", "FORWARD", "OUTPUT")]

    def emit_prologue(self, g: Gen, needs: Needs, chains: tuple[str, ...],
                      emit_chain: ChainEmitter, pass_blk: ir.Block) -> None:
        ctx = g.func.args[0]
        state, skb, ip, load_l4 = nf_read_header(g, IPHDR, "ip", pass_blk)
        self.gate(g, ctx, state, skb, ip, needs, pass_blk)
        pkt = self.parse_ipv4(g, ip, None, needs, load_l4, pass_blk)
        in_name = self._devname(g, state, "in") if needs.in_name else None
        out_name = self._devname(g, state, "out") if needs.out_name else None
        (chain,) = chains
        from dataclasses import replace

        emit_chain(chain, replace(_with_names(pkt, in_name, out_name), skb=skb))

    def gate(self, g: Gen, ctx: ir.Value, state: ir.Value, skb: ir.Value, ip: ir.Value,
             needs: Needs, pass_blk: ir.Block) -> None:
        """Which packets this program decides (all: it implements its chain alone)."""

    def _devname(self, g: Gen, state: ir.Value, which: str) -> ir.Value:
        from bpfilter.loader import btf

        dev = g.load(state, btf.struct_member_offset("nf_hook_state", which), PTR, align=8)
        name_off = btf.struct_member_offset("net_device", "name")
        buf = g.stack(IFNAMSIZ, f"{which}name", zero=False)
        for w in (0, 8):
            g.b.store(g.load(dev, name_off + w, I64, align=8), g.ptr(buf, w), align=8)
        return buf


class NfCompanionFlavor(NfFlavor):
    """nf programs at INPUT / FORWARD completing an xdp/tc ingress program: they decide
    only what ingress could not — packets that came in on an interface without the
    ingress program (e.g. a VLAN device, or ingress_seen unset), and fragments or
    reassembled datagrams (IPCB(skb)->frag_max_size != 0), which ingress passes on.
    Everything else was decided (and counted) at ingress: NF_ACCEPT untouched.
    """

    def programs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(f"filter_{c.lower()}", c, (c,)) for c in ("INPUT", "FORWARD")]

    def maps(self, needs: Needs) -> tuple[str, ...]:
        names = (IFNAMES_MAP,) if needs.in_name or needs.out_name else ()
        return (INGRESS_SEEN_MAP, *names)

    def gate(self, g: Gen, ctx: ir.Value, state: ir.Value, skb: ir.Value, ip: ir.Value,
             needs: Needs, pass_blk: ir.Block) -> None:
        from bpfilter.loader import btf

        b = g.b
        decide = g.block("decide")
        frag = b.and_(g.be16(ip, 6), I32(IP_MF | IP_OFFSET))
        g.branch_if(b.icmp_unsigned("!=", frag, I32(0)), decide, "whole")
        cb = btf.struct_member_offset("sk_buff", "cb")
        fms = btf.struct_member_offset("inet_skb_parm", "frag_max_size")
        reasm = g.load(skb, cb + fms, I16, align=2)
        g.branch_if(b.icmp_unsigned("!=", reasm, I16(0)), decide, "notreasm")
        decide_unless_ingress_seen(g, state, decide)
        # ingress also passes packets whose interface names it could not read (an
        # interface missing from "ifnames", e.g. created after the load): decide those.
        if needs.in_name or needs.out_name:
            for which in ("in", "out"):
                dev = g.load(state, btf.struct_member_offset("nf_hook_state", which), PTR,
                             align=8)
                idx = g.load(dev, btf.struct_member_offset("net_device", "ifindex"), I32,
                             align=4)
                nkey = g.stack(4, f"{which}namekey", zero=False)
                b.store(idx, nkey, align=4)
                name = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(IFNAMES_MAP), nkey])
                absent = b.icmp_unsigned("==", name, ir.Constant(PTR, None))
                # no out device (INPUT) reads as ifindex 0: nothing to look up
                g.branch_if(b.and_(absent, b.icmp_unsigned("!=", idx, I32(0))), decide,
                            f"{which}named")
        b.branch(pass_blk)
        g.at(decide)


class NfOutputFlavor(NfFlavor):
    """The nf OUTPUT program of an xdp/tc table (ingress never sees local output)."""

    def programs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [("filter_output", "OUTPUT", ("OUTPUT",))]


FLAVORS: dict[str, Flavor] = {f.name: f for f in (XdpFlavor(), TcFlavor(), NfFlavor())}
# What compile_table builds per flavor: xdp/tc are completed by nf programs so the
# table is implemented exactly (see NfCompanionFlavor).
PROGRAM_SETS: dict[str, tuple[Flavor, ...]] = {
    "xdp": (FLAVORS["xdp"], NfCompanionFlavor(), NfOutputFlavor()),
    "tc": (FLAVORS["tc"], NfCompanionFlavor(), NfOutputFlavor()),
    "nf": (FLAVORS["nf"],),
}
