"""Shadowed-rule removal: drop boxes that an earlier box covers entirely.

Why: such a rule can never be the first match (iptables never counts it either, so
its counter stays 0 in both), and every copy of it costs tree nodes and leaf scans.
Exact, not heuristic: a box is removed only when one earlier box of the same run
contains it in every dimension.

Finding the coverer without comparing all pairs: an earlier box can only cover B if
its address ranges contain B's, and addresses are prefixes, so the candidates are
found by looking up each (source prefix, destination prefix) pair that contains B's
among the prefix lengths the run actually uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.passes.fivetuple import Box

MASK32 = 0xFFFFFFFF


def _plen(lo: int, hi: int) -> int | None:
    """Prefix length of [lo, hi], or None when it is not a prefix."""
    size = hi - lo + 1
    if size & (size - 1) or lo & (size - 1):
        return None
    return 32 - (size.bit_length() - 1)


def _prefix(addr: int, plen: int) -> tuple[int, int]:
    host = MASK32 >> plen if plen < 32 else 0
    lo = addr & ~host & MASK32
    return lo, lo | host


def remove_shadowed(boxes: Sequence[Box], shadowers: set[int] | None = None) -> list[Box]:
    """`boxes` (priority order) without those covered by an earlier box; the rule of
    each box that covered one is added to `shadowers` (an in-place update must not
    remove such a rule: what it hid would have to come back)."""
    src_lens: set[int] = set()
    # src range -> dst range -> earlier kept boxes with exactly those ranges
    seen: dict[tuple[int, int], dict[tuple[int, int], list[Box]]] = {}
    dst_lens: dict[tuple[int, int], set[int]] = {}  # dst prefix lengths per src range
    out: list[Box] = []
    for b in boxes:
        by = _covered(b, seen, src_lens, dst_lens)
        if by is not None:
            if shadowers is not None:
                shadowers.add(by)
        else:
            out.append(b)
            skey, dkey = (b.lo[0], b.hi[0]), (b.lo[1], b.hi[1])
            ps, pd = _plen(*skey), _plen(*dkey)
            if ps is not None and pd is not None:
                src_lens.add(ps)
                dst_lens.setdefault(skey, set()).add(pd)
                seen.setdefault(skey, {}).setdefault(dkey, []).append(b)
    return out


def _covered(b: Box, seen: dict[tuple[int, int], dict[tuple[int, int], list[Box]]],
             src_lens: set[int], dst_lens: dict[tuple[int, int], set[int]]) -> int | None:
    """The rule of an earlier box covering `b`, or None."""
    ps = _plen(b.lo[0], b.hi[0])
    pd = _plen(b.lo[1], b.hi[1])
    if ps is None or pd is None:
        return None
    for sl in src_lens:
        if sl > ps:
            continue
        skey = _prefix(b.lo[0], sl)
        by_dst = seen.get(skey)
        if by_dst is None:
            continue
        for dl in dst_lens[skey]:
            if dl > pd:
                continue
            for a in by_dst.get(_prefix(b.lo[1], dl), ()):
                if (a.lo[2] <= b.lo[2] and a.hi[2] >= b.hi[2] and a.lo[3] <= b.lo[3]
                        and a.hi[3] >= b.hi[3] and a.lo[4] <= b.lo[4] and a.hi[4] >= b.hi[4]
                        and a.lo[5] <= b.lo[5] and a.hi[5] >= b.hi[5]):
                    return a.rule
    return None
