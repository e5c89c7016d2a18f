"""Reading what netfilter computed before the hook from the nf flavor's `sk_buff`.

Why here: conntrack, mark, pkttype and addrtype all read the skb (or objects it points
to) at offsets from vmlinux BTF; only the nf flavor has the skb (`PacketView.skb`),
so these matches are `nf_only` and the planner keeps them off xdp/tc.
Scalar skb members are plain loads through the trusted pointer; objects reached
through a scalar (`_nfct` → `struct nf_conn`) are copied with bpf_probe_read_kernel.
"""

from __future__ import annotations

from llvmlite import ir

from bpfilter.backend.gen import I8, I32, I64, PTR
from bpfilter.backend.matchers import RuleCtx
from bpfilter.backend.model import UnsupportedRule
from bpfilter.loader import btf

BPF_FUNC_probe_read_kernel = 113


def need_skb(rc: RuleCtx, what: str) -> ir.Value:
    """The skb pointer, or UnsupportedRule on a flavor without one (xdp/tc)."""
    skb = rc.pkt.skb
    if skb is None:
        raise UnsupportedRule(f"{what} needs the netfilter hook (nf flavor)")
    return skb


def skb_u64(rc: RuleCtx, skb: ir.Value, member: str) -> ir.Value:
    return rc.gen.load(skb, btf.struct_member_offset("sk_buff", member), I64, align=8)


def skb_u32(rc: RuleCtx, skb: ir.Value, member: str) -> ir.Value:
    return rc.gen.load(skb, btf.struct_member_offset("sk_buff", member), I32, align=4)


def skb_bitfield_byte(rc: RuleCtx, skb: ir.Value, member: str) -> tuple[ir.Value, int]:
    """(the byte holding bitfield `member` as i32, its bit shift within that byte)."""
    bits, _ = btf.load().member_bit_offset("sk_buff", member)
    return rc.gen.b.zext(rc.gen.load(skb, bits // 8, I8), I32), bits % 8


def read_kernel(rc: RuleCtx, buf: ir.Value, addr: ir.Value, size: int) -> ir.Value:
    """Copy `size` bytes at kernel address `addr` (i64) into stack `buf`; returns an
    i1 that is true when the read failed."""
    g = rc.gen
    ret = g.helper(BPF_FUNC_probe_read_kernel, I64, [buf, I64(size), g.b.inttoptr(addr, PTR)])
    return g.b.icmp_signed("!=", ret, I64(0))


def shared_stack(rc: RuleCtx, size: int, name: str) -> ir.Value:
    """One stack buffer per program for `name`, reused by every rule that needs it
    (each writes it before reading): per-rule buffers would add up past the 512-byte
    BPF stack in long chains."""
    cache: dict[str, ir.Value] = rc.gen.__dict__.setdefault("_shared_stack", {})
    buf = cache.get(name)
    if buf is None:
        buf = cache[name] = rc.gen.stack(size, name, zero=False)
    return buf
