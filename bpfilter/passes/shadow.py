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


def remove_shadowed(boxes: Sequence[Box]) -> list[Box]:
    """`boxes` (priority order) without those covered by an earlier box."""
    plens: tuple[set[int], set[int]] = (set(), set())
    for b in boxes:
        for d in (0, 1):
            p = _plen(b.lo[d], b.hi[d])
            if p is not None:
                plens[d].add(p)
    src_lens, dst_lens = sorted(plens[0]), sorted(plens[1])
    # (src range, dst range) -> earlier boxes with exactly those ranges
    seen: dict[tuple[int, int, int, int], list[Box]] = {}
    out: list[Box] = []
    for b in boxes:
        if not _covered(b, seen, src_lens, dst_lens):
            out.append(b)
            seen.setdefault((b.lo[0], b.hi[0], b.lo[1], b.hi[1]), []).append(b)
    return out


def _covered(b: Box, seen: dict[tuple[int, int, int, int], list[Box]],
             src_lens: list[int], dst_lens: list[int]) -> bool:
    ps = _plen(b.lo[0], b.hi[0])
    pd = _plen(b.lo[1], b.hi[1])
    if ps is None or pd is None:
        return False
    for sl in src_lens:
        if sl > ps:
            break
        s = _prefix(b.lo[0], sl)
        for dl in dst_lens:
            if dl > pd:
                break
            cands = seen.get((*s, *_prefix(b.lo[1], dl)))
            if not cands:
                continue
            for a in cands:
                if all(a.lo[k] <= b.lo[k] and a.hi[k] >= b.hi[k] for k in range(2, 6)):
                    return True
    return False
