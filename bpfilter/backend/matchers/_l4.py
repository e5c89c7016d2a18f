"""Shared L4 idioms of xt_tcpudp, xt_multiport and xt_icmp.

Every one of these kernel matches first refuses non-first fragments (fragoff != 0 →
no match) and then reads its header with skb_header_pointer(); if the datagram is
too short for that header the match sets hotdrop and the packet is DROPPED at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llvmlite import ir

from bpfilter.backend.gen import I32
from bpfilter.backend.matchers import RuleCtx
from bpfilter.ir import Match, Option


def header_guard(rc: RuleCtx, need: int, evil_frag: bool = False) -> None:
    """Fail on non-first fragments, hotdrop when fewer than `need` L4 bytes exist.

    `evil_frag`: xt_tcp also hotdrops fragments at offset 1 (they could overwrite
    the TCP flags of the first fragment).
    """
    g, p = rc.gen, rc.pkt
    if evil_frag:
        g.branch_if(g.b.icmp_unsigned("==", p.fragoff, I32(1)), rc.hotdrop, "notevil")
    rc.require(g.b.icmp_unsigned("==", p.fragoff, I32(0)))
    g.branch_if(g.b.icmp_unsigned("<", p.l4_len, I32(need)), rc.hotdrop, "hdrok")


def in_range(rc: RuleCtx, v: ir.Value, lo: int, hi: int) -> ir.Value:
    """lo <= v <= hi for an i32 v, folding the trivial bounds."""
    b = rc.gen.b
    if lo == hi:
        return b.icmp_unsigned("==", v, I32(lo))
    conds = []
    if lo > 0:
        conds.append(b.icmp_unsigned(">=", v, I32(lo)))
    if hi < 0xFFFF:
        conds.append(b.icmp_unsigned("<=", v, I32(hi)))
    if not conds:
        return ir.Constant(ir.IntType(1), 1)
    return conds[0] if len(conds) == 1 else b.and_(conds[0], conds[1])


def any_of(rc: RuleCtx, conds: Iterable[ir.Value]) -> ir.Value:
    out = None
    for c in conds:
        out = c if out is None else rc.gen.b.or_(out, c)
    return out if out is not None else ir.Constant(ir.IntType(1), 0)


def xor_neg(rc: RuleCtx, cond: ir.Value, negated: bool) -> ir.Value:
    return rc.gen.b.not_(cond) if negated else cond


def opt(match: Match, *names: str) -> Option | None:
    """The first option present under any of `names` (canonical name or alias)."""
    for n in names:
        o = match.get(n)
        if o is not None:
            return o
    return None


def port_bounds(value: Any) -> tuple[int, int]:
    """(lo, hi) of a PortRange, NumRange, int or (lo, hi) pair."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(x, int) for x in value):
        return value[0], value[1]
    return int(value.lo), int(value.hi)
