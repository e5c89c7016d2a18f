"""IPv6 packet parsing for the BPF programs: the header, the extension header chain
walked like the kernel's ipv6_find_hdr(), and what `-m ipv6header` computes.

Why one walk in the prologue: ip6_packet_match (`-p`), tcp/udp/icmp6 (thoff, fragoff),
and hbh/dst/rt/frag (first header of their type) all call ipv6_find_hdr() with
different targets over the same chain. One bounded loop records, for the final
protocol and for each extension header type, exactly what that call would return,
so every matcher reads constants from the stack and the code stays the same on
every flavor.

ipv6_find_hdr(skb, &off, target, &fragoff, NULL), restated:
* extension headers are HOP(0) ROUTING(43) FRAGMENT(44) AUTH(51) DEST(60) and
  NONE(59), which ends the chain; anything else is the final protocol;
* every extension header must be readable (2 bytes; routing and fragment 4) or the
  call fails with -EBADMSG; the target is found before that read, yet still fails;
* a fragment header with a non-zero offset ends the walk: target -1 gets its
  next header (with fragoff) when that is final, else -ENOENT with fragoff 0; any
  other target not yet found gets -ENOENT;
* lengths: fragment 8, AUTH (hdrlen+2)*4, others (hdrlen+1)*8.
`-m ipv6header` (ip6t_ipv6header.c) walks on its own: ESP ends it too, it does not
stop at fragments, and a chain running past the datagram ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from bpfilter.backend.gen import I32, I64, PTR, Gen
from bpfilter.backend.packet import L4_MAX, Packet

IP6HDR = 40
NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT = 0, 43, 44
NEXTHDR_ESP, NEXTHDR_AUTH, NEXTHDR_NONE, NEXTHDR_DEST = 50, 51, 59, 60
# ipv6_ext_hdr(): what ipv6_find_hdr walks through (NONE ends the walk)
FIND_EXT = (NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_FRAGMENT, NEXTHDR_AUTH, NEXTHDR_DEST)
# Extension headers a matcher asks ipv6_find_hdr for → their slot in the ext area
TARGETS = {NEXTHDR_HOP: 0, NEXTHDR_DEST: 1, NEXTHDR_ROUTING: 2, NEXTHDR_FRAGMENT: 3,
           NEXTHDR_AUTH: 4}
SLOT_SIZE = 24  # u32 status, u32 avail (readable bytes, 0/2/4/8), i32 remaining, pad, u8[8]
ST_ENOENT, ST_EBADMSG, ST_FOUND = 0, 1, 2
IH_OFF = SLOT_SIZE * len(TARGETS)  # u32: ipv6header's flags, or IH_FALSE
EXT_SIZE = IH_OFF + 8
IH_FALSE = 0x100  # the ipv6header walk returned false before evaluating the flags
# ip6t_ipv6header.h masks
MASK_HOPOPTS, MASK_DSTOPTS, MASK_ROUTING, MASK_FRAGMENT = 128, 64, 32, 16
MASK_AH, MASK_ESP, MASK_NONE, MASK_PROTO = 8, 4, 2, 1
IH_MASKS = {NEXTHDR_HOP: MASK_HOPOPTS, NEXTHDR_DEST: MASK_DSTOPTS,
            NEXTHDR_ROUTING: MASK_ROUTING, NEXTHDR_FRAGMENT: MASK_FRAGMENT,
            NEXTHDR_AUTH: MASK_AH}
# Packet.proto when ipv6_find_hdr(target -1) fails with fragoff 0: a rule with -p hotdrops
PROTO_ERR = 0x100
# Longest chain walked (iterations of the walk's loop).
MAX_EXT = 8192  # > (65535 - 40) / 8: every chain a datagram can hold
BPF_FUNC_probe_read_kernel = 113

# read(offset i64, buffer, size i64) → i64/i32 0 on success
Reader = Callable[[ir.Value, ir.Value, ir.Value], ir.Value]


@dataclass(frozen=True)
class Packet6(Packet):
    """`Packet` for IPv6: `ip` points to the 40-byte header; proto/fragoff/l4 are what
    ipv6_find_hdr(-1) gives (proto PROTO_ERR on failure); `ext` points to the ext area
    (TARGETS slots + the ipv6header result, layout above); tot_len = 40 + payload
    length (skb->len at the netfilter hooks: what ip6tables counts)."""

    ext: ir.Value | None = None


def ext_slot(target: int) -> int:
    """Offset of `target`'s slot in the ext area."""
    return SLOT_SIZE * TARGETS[target]


class Walker:
    """Emits the walk into `g`, reading packet bytes at IPv6-header offsets via `read`."""

    def __init__(self, g: Gen, read: Reader) -> None:
        self.g = g
        self.read = read

    def _read_tiers(self, off: ir.Value, buf: ir.Value, sizes: tuple[int, ...]) -> ir.Value:
        """Read the most of `sizes` (descending) readable at `off` into buf (zeroed
        first); the i32 size read, 0 when not even the smallest fits."""
        g, b = self.g, self.g.b
        b.store(I64(0), buf, align=8)
        done = g.block("rdone")
        results: list[tuple[ir.Value, ir.Block]] = []
        for size in sizes:
            rc = self.read(b.zext(off, I64), buf, I64(size))
            ok = b.icmp_signed("==", rc, ir.Constant(rc.type, 0))
            results.append((I32(size), b.block))
            nxt = g.block("rnext")
            b.cbranch(ok, done, nxt)
            g.at(nxt)
            b.store(I64(0), buf, align=8)
        results.append((I32(0), b.block))
        b.branch(done)
        g.at(done)
        phi = b.phi(I32)
        for v, blk in results:
            phi.add_incoming(v, blk)
        return phi

    def walk(self, ip: ir.Value, tot: ir.Value, ext: ir.Value, meta: ir.Value,
             want_ipv6header: bool, pass_blk: ir.Block) -> None:
        """Fill meta[proto, fragoff, thoff] (i32 at 8, 12, 16) and the ext area.

        A chain longer than MAX_EXT headers goes to `pass_blk` (decided elsewhere or
        not at all: see the flavors)."""
        g, b = self.g, self.g.b
        st = g.stack(16, "w6")  # u32 nh, u32 start, pad, u32 fh_done
        hdr = g.stack(8, "w6hdr")
        b.store(g.u8(ip, 6), st, align=4)
        b.store(I32(IP6HDR), g.ptr(st, 4), align=4)
        b.store(I32(0), g.ptr(meta, 12), align=4)
        b.store(I32(0), g.ptr(meta, 16), align=4)
        if want_ipv6header:
            b.store(I32(0), g.ptr(ext, IH_OFF), align=4)
        done = g.block("w6done")
        # An open-coded iterator (bpf_iter_num) bounds the loop: the verifier checks the
        # body until its states converge instead of once per iteration, so the chain may
        # be as long as a datagram allows (each header is at least 8 bytes).
        it = g.stack(8, "w6iter", zero=False)
        g.kfunc("bpf_iter_num_new", I32, [it, I32(0), I32(MAX_EXT)])
        head, body, exhausted, finish, latch = (
            g.block("w6head"), g.block("w6body"), g.block("w6exhausted"), g.block("w6finish"),
            g.block("w6latch"))
        # Every iteration meets the loop head with the loop state as unknown bytes
        # (see `launder`): otherwise each path's constants (flags, statuses) make its
        # state differ and the verifier never sees the loop converge.
        self._launder_state(st, hdr, ext, meta)
        b.branch(head)
        g.at(head)
        cur = g.kfunc("bpf_iter_num_next", PTR, [it])
        b.cbranch(b.icmp_unsigned("==", cur, ir.Constant(PTR, None)), exhausted, body)
        g.at(exhausted)
        g.kfunc("bpf_iter_num_destroy", ir.VoidType(), [it])
        b.branch(pass_blk)
        g.at(body)
        self._step(st, hdr, ext, meta, tot, want_ipv6header, latch, finish)
        g.at(latch)
        self._launder_state(st, hdr, ext, meta)
        b.branch(head)
        g.at(finish)
        g.kfunc("bpf_iter_num_destroy", ir.VoidType(), [it])
        b.branch(done)
        g.at(done)
        if want_ipv6header:
            b.store(I32(0), g.ptr(ext, IH_OFF + 4), align=4)
        self.launder(ext, EXT_SIZE)
        self.launder(meta, 24)

    def _step(self, st: ir.Value, hdr: ir.Value, ext: ir.Value, meta: ir.Value,
              tot: ir.Value, want_ipv6header: bool, loop: ir.Block, done: ir.Block) -> None:
        """One header of the chain; `loop`: the next step."""
        g, b = self.g, self.g.b
        nh = b.load(st, typ=I32, align=4)
        start = b.load(g.ptr(st, 4), typ=I32, align=4)

        def ih_done() -> ir.Value:
            return b.icmp_unsigned("!=", b.load(g.ptr(ext, IH_OFF + 4), typ=I32, align=4),
                                   I32(0))

        def final(proto: ir.Value, fragoff: ir.Value | int, thoff: ir.Value | int) -> None:
            """ipv6_find_hdr(-1) returns here (only if it has not already)."""
            skip = g.block("w6fhset")
            cont = g.block("w6fhdone")
            b.cbranch(b.icmp_unsigned("==", g.opaque(b.load(g.ptr(st, 12), typ=I32, align=4)),
                                      I32(0)), skip, cont)
            g.at(skip)
            b.store(proto, g.ptr(meta, 8), align=4)
            b.store(fragoff if isinstance(fragoff, ir.Value) else I32(fragoff),
                    g.ptr(meta, 12), align=4)
            b.store(thoff if isinstance(thoff, ir.Value) else I32(thoff), g.ptr(meta, 16),
                    align=4)
            b.store(I32(1), g.ptr(st, 12), align=4)
            b.branch(cont)
            g.at(cont)

        def ih_end(flags: int | None) -> None:
            """The ipv6header walk ends: OR `flags` in (None: it returned false)."""
            if not want_ipv6header:
                return
            p = g.ptr(ext, IH_OFF)
            skip, cont = g.block("w6ihset"), g.block("w6ihdone")
            b.cbranch(ih_done(), cont, skip)
            g.at(skip)
            cur = b.load(p, typ=I32, align=4)
            b.store(I32(IH_FALSE) if flags is None else b.or_(cur, I32(flags)), p, align=4)
            b.store(I32(1), g.ptr(ext, IH_OFF + 4), align=4)
            b.branch(cont)
            g.at(cont)

        # --- the chain ends: a final protocol, NONE, or ESP --------------------------------
        is_find_ext = self._in(nh, FIND_EXT)
        terminal = g.block("w6term")
        walk_ext = g.block("w6ext")
        b.cbranch(is_find_ext, walk_ext, terminal)
        g.at(terminal)
        final(nh, 0, start)
        if want_ipv6header:
            none_b, esp_b, prot_b = g.block("w6none"), g.block("w6esp"), g.block("w6prot")
            sw = b.switch(nh, prot_b)
            sw.add_case(I32(NEXTHDR_NONE), none_b)
            sw.add_case(I32(NEXTHDR_ESP), esp_b)
            g.at(none_b)
            ih_end(MASK_NONE)
            b.branch(done)
            g.at(esp_b)
            # "len < 2 → false" is checked before ESP is recognised
            short = b.icmp_signed("<", b.sub(tot, start), I32(2))
            esp_short, esp_ok = g.block("w6espshort"), g.block("w6espok")
            b.cbranch(short, esp_short, esp_ok)
            g.at(esp_short)
            ih_end(None)
            b.branch(done)
            g.at(esp_ok)
            ih_end(MASK_ESP)
            b.branch(done)
            g.at(prot_b)
            ih_end(MASK_PROTO)
        b.branch(done)

        # --- an extension header both walks go through ---------------------------------------
        g.at(walk_ext)
        avail = self._read_tiers(start, hdr, (8, 4, 2))
        need = b.select(self._in(nh, (NEXTHDR_ROUTING, NEXTHDR_FRAGMENT)), I32(4), I32(2))
        bad = b.icmp_unsigned("<", avail, need)
        if want_ipv6header:
            ih_short = b.icmp_unsigned("<", avail, I32(2))
            ihs, ihc = g.block("w6ihshort"), g.block("w6ihcont")
            b.cbranch(ih_short, ihs, ihc)
            g.at(ihs)
            ih_end(None)
            b.branch(ihc)
            g.at(ihc)
        badb, good = g.block("w6bad"), g.block("w6good")
        b.cbranch(bad, badb, good)
        g.at(badb)
        # -EBADMSG for -1 and for every target not found yet
        final(I32(PROTO_ERR), 0, 0)
        for t in TARGETS:
            self._set_if_enoent(ext, t, ST_EBADMSG)
        if want_ipv6header:
            # avail >= 2 here means only the 4-byte read failed: ipv6header goes on
            b.cbranch(b.icmp_unsigned("<", avail, I32(2)), done, good)
        else:
            b.branch(done)
        g.at(good)
        nexthdr = g.u8(hdr, 0)
        hl = g.u8(hdr, 1)
        hdrlen = b.select(
            b.icmp_unsigned("==", nh, I32(NEXTHDR_FRAGMENT)), I32(8),
            b.select(b.icmp_unsigned("==", nh, I32(NEXTHDR_AUTH)),
                     b.shl(b.add(hl, I32(2)), I32(2)), b.shl(b.add(hl, I32(1)), I32(3))))
        if want_ipv6header:
            live, cont = g.block("w6ihlive"), g.block("w6ihmaskdone")
            b.cbranch(ih_done(), cont, live)
            g.at(live)
            mask = I32(0)
            for t, m in IH_MASKS.items():
                mask = b.select(b.icmp_unsigned("==", nh, I32(t)), I32(m), mask)
            p = g.ptr(ext, IH_OFF)
            b.store(b.or_(b.load(p, typ=I32, align=4), mask), p, align=4)
            b.branch(cont)
            g.at(cont)
        # find_hdr side (skipped once it has returned)
        fh_live, fh_next = g.block("w6fh"), g.block("w6adv")
        fh_done = b.load(g.ptr(st, 12), typ=I32, align=4)
        b.cbranch(b.icmp_unsigned("==", fh_done, I32(0)), fh_live, fh_next)
        g.at(fh_live)
        remaining = b.sub(tot, start)
        for t in TARGETS:
            hit, cont = g.block("w6found"), g.block("w6foundnext")
            b.cbranch(b.icmp_unsigned("==", nh, I32(t)), hit, cont)
            g.at(hit)
            self._found(ext, t, avail, remaining, hdr)
            b.branch(cont)
            g.at(cont)
        fragoff = b.and_(g.be16(hdr, 2), I32(0xFFF8))
        later = b.and_(b.icmp_unsigned("==", nh, I32(NEXTHDR_FRAGMENT)),
                       b.icmp_unsigned("!=", fragoff, I32(0)))
        lat, notlat = g.block("w6later"), g.block("w6first")
        b.cbranch(later, lat, notlat)
        g.at(lat)
        # a non-first fragment: find_hdr returns now (the ext found above stays)
        nfinal = self._in(nexthdr, FIND_EXT)
        ok_b, enoent_b, after = g.block("w6nfok"), g.block("w6nfenoent"), g.block("w6nfdone")
        b.cbranch(nfinal, enoent_b, ok_b)
        g.at(ok_b)
        final(nexthdr, fragoff, 0)
        b.branch(after)
        g.at(enoent_b)
        final(I32(PROTO_ERR), 0, 0)
        b.branch(after)
        g.at(after)
        if not want_ipv6header:
            b.branch(done)
        else:
            b.branch(fh_next)
        g.at(notlat)
        b.branch(fh_next)
        g.at(fh_next)
        new_start = b.add(start, hdrlen)
        b.store(nexthdr, st, align=4)
        b.store(new_start, g.ptr(st, 4), align=4)
        if want_ipv6header:
            # "if (ptr > skb->len) break" after advancing
            past = b.icmp_unsigned(">", new_start, tot)
            pastb, cont = g.block("w6past"), g.block("w6pastno")
            b.cbranch(past, pastb, cont)
            g.at(pastb)
            prot = b.icmp_unsigned("!=", nexthdr, I32(NEXTHDR_NONE))
            prot = b.and_(prot, b.icmp_unsigned("!=", nexthdr, I32(NEXTHDR_ESP)))
            pb, nb = g.block("w6pastprot"), g.block("w6pastnone")
            b.cbranch(prot, pb, nb)
            g.at(pb)
            ih_end(MASK_PROTO)
            b.branch(nb)
            g.at(nb)
            ih_end(0)
            b.branch(cont)
            g.at(cont)
            # both walks over → done
            both = b.and_(
                b.icmp_unsigned("!=", b.load(g.ptr(st, 12), typ=I32, align=4), I32(0)),
                b.icmp_unsigned("!=", b.load(g.ptr(ext, IH_OFF + 4), typ=I32, align=4),
                                I32(0)))
            b.cbranch(both, done, loop)
        else:
            b.branch(loop)

    def _launder_state(self, st: ir.Value, hdr: ir.Value, ext: ir.Value, meta: ir.Value
                       ) -> None:
        self.launder(st, 16)
        self.launder(hdr, 8)
        self.launder(ext, EXT_SIZE)
        self.launder(meta, 24)

    def launder(self, buf: ir.Value, size: int) -> None:
        """Copy `buf` onto itself with bpf_probe_read_kernel: same bytes, but the
        verifier no longer knows them (the helper writes unknown data)."""
        self.g.helper(BPF_FUNC_probe_read_kernel, I64, [buf, I64(size), buf])

    def _in(self, v: ir.Value, values: tuple[int, ...]) -> ir.Value:
        b = self.g.b
        out = None
        for x in values:
            c = b.icmp_unsigned("==", v, I32(x))
            out = c if out is None else b.or_(out, c)
        assert out is not None
        return out

    def _set_if_enoent(self, ext: ir.Value, target: int, status: int) -> None:
        g, b = self.g, self.g.b
        p = g.ptr(ext, ext_slot(target))
        cur = b.load(p, typ=I32, align=4)
        keep = b.icmp_unsigned("!=", cur, I32(ST_ENOENT))
        b.store(b.select(keep, cur, I32(status)), p, align=4)

    def _found(self, ext: ir.Value, target: int, avail: ir.Value, remaining: ir.Value,
               hdr: ir.Value) -> None:
        """First `target` header: record it unless an earlier one was recorded."""
        g, b = self.g, self.g.b
        base = ext_slot(target)
        rec, cont = g.block("w6rec"), g.block("w6recdone")
        cur = b.load(g.ptr(ext, base), typ=I32, align=4)
        b.cbranch(b.icmp_unsigned("==", cur, I32(ST_ENOENT)), rec, cont)
        g.at(rec)
        b.store(I32(ST_FOUND), g.ptr(ext, base), align=4)
        b.store(avail, g.ptr(ext, base + 4), align=4)
        b.store(remaining, g.ptr(ext, base + 8), align=4)
        b.store(b.load(hdr, typ=I64, align=8), g.ptr(ext, base + 16), align=8)
        b.branch(cont)
        g.at(cont)


def parse_ipv6(g: Gen, ip: ir.Value, read: Reader, l4_need: int, want_ipv6header: bool,
               pass_blk: ir.Block, walk: bool = True) -> Packet6:
    """The packet as ip6tables sees it. `read(off, buf, n)` reads IPv6-header-relative
    bytes within the datagram (40 + payload length; the caller makes sure no bytes
    beyond it are visible). `walk=False`: the caller guarantees the header is followed
    directly by a final protocol (no extension headers): no walk code at all."""
    from bpfilter.backend.flavors import load_l4_tiered

    b = g.b
    tot = b.add(g.be16(ip, 4), I32(IP6HDR))
    meta = g.stack(24, "meta6", zero=False)
    ext = g.stack(EXT_SIZE, "ext6")
    b.store(tot, meta, align=4)
    merged = g.block("w6merged")
    if walk:
        # most packets have no extension header: the walk (a loop of helper calls) is
        # only entered when the first next header is one
        slow, fast = g.block("w6slow"), g.block("w6fast")
        nh0 = g.u8(ip, 6)
        is_ext = None
        for e in FIND_EXT:
            c = b.icmp_unsigned("==", nh0, I32(e))
            is_ext = c if is_ext is None else b.or_(is_ext, c)
        b.cbranch(is_ext, slow, fast)
        g.at(slow)
        Walker(g, read).walk(ip, tot, ext, meta, want_ipv6header, pass_blk)
        b.branch(merged)
        g.at(fast)
    # no extension header: the final protocol follows the fixed header
    nh = g.u8(ip, 6)
    b.store(nh, g.ptr(meta, 8), align=4)
    b.store(I32(0), g.ptr(meta, 12), align=4)
    b.store(I32(IP6HDR), g.ptr(meta, 16), align=4)
    if want_ipv6header:
        flags = b.select(b.icmp_unsigned("==", nh, I32(NEXTHDR_NONE)), I32(MASK_NONE),
                         b.select(b.icmp_unsigned("==", nh, I32(NEXTHDR_ESP)),
                                  I32(MASK_ESP), I32(MASK_PROTO)))
        esp_short = b.and_(b.icmp_unsigned("==", nh, I32(NEXTHDR_ESP)),
                           b.icmp_signed("<", b.sub(tot, I32(IP6HDR)), I32(2)))
        b.store(b.select(esp_short, I32(IH_FALSE), flags), g.ptr(ext, IH_OFF), align=4)
    b.branch(merged)
    g.at(merged)
    proto = b.load(g.ptr(meta, 8), typ=I32, align=4)
    fragoff = b.load(g.ptr(meta, 12), typ=I32, align=4)
    thoff = b.load(g.ptr(meta, 16), typ=I32, align=4)
    l4_len = b.sub(tot, thoff)
    l4_len = b.select(b.icmp_signed("<", l4_len, I32(0)), I32(0), l4_len)
    # proto error or a non-first fragment: thoff is meaningless, nothing reads L4
    have_l4 = b.and_(b.icmp_unsigned("<", proto, I32(PROTO_ERR)),
                     b.icmp_unsigned("==", fragoff, I32(0)))
    l4_len = b.select(have_l4, l4_len, I32(0))
    b.store(l4_len, g.ptr(meta, 4), align=4)
    l4 = g.stack(L4_MAX + 4, "l4")
    if l4_need:
        load_l4_tiered(g, have_l4, l4_len, read, thoff, l4, l4_need, pass_blk)
    return Packet6(ip=ip, l4=l4, tot_len=tot, l4_len=l4_len, proto=proto, fragoff=fragoff,
                   meta=meta, ext=ext)
