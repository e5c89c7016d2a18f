"""Decision trees over rule boxes: first-match classification in O(depth + leaf).

Why trees (chosen by measurement, see bench/RESULTS.md): per packet a tree costs one
array-map load per level plus a scan of a few rules, and its depth grows with
log(rules), so 10 and 10k rules cost nearly the same. Linear bit vectors (one AND per
64 rules) grow linearly with the rules, and tuple-space search costs one hash probe per
distinct prefix-length/port-shape tuple, which in ClassBench-like ACLs is dozens to
hundreds.

Construction (HyperSplit-like): each node splits one dimension at one point, chosen
among the rule boundaries inside the node's box so that the larger child plus the
replicated rules is smallest. Rules stay in priority order everywhere; in a box, every
rule after one that covers the whole box can never be the first match there and is
cut. Rules wide in an address (wildcards, short prefixes) would be copied into every
subtree that splits on that address, so rules are first partitioned by which address
is wide (EffiCuts' idea) and each part gets its own tree; a packet walks every tree
and the lowest rule position wins. Packets with an unreadable L4 header (l4ok = 0,
see fivetuple.py) walk trees of their own: those of the HOTDROP halves of port rules
and of the rules without port match.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

from bpfilter.passes.fivetuple import FULL_HI, FULL_LO, NDIMS, Box

LEAF = 0xFF
BINTH = 8  # split nodes holding more rules than this (measured: 4 halves nothing but
# doubles the nodes and the build time)
LEAF_MAX = 24  # the BPF leaf scan's bound; a box at MAX_DEPTH holding more fails
MAX_DEPTH = 40  # the BPF walk's bound
MAX_TREES = 8  # 2 x (src wide?) x (dst wide?)
QUANTILES = 3  # split points tried per dimension
# l4ok is never worth a split: a tree's boxes all hold l4ok=1 (normal) or 0 (short)
SPLIT_DIMS = (0, 1, 2, 3, 4)
SAMPLE = 128  # rules looked at to choose a split
WIDE = 1 << 16  # an address range at least this wide (a /16 or shorter) is "wide"


class TreeTooBig(ValueError):
    """The rules cannot be split within MAX_DEPTH / LEAF_MAX (the caller emits them
    linearly instead)."""


@dataclass(frozen=True)
class TreeInfo:
    root: int
    l4ok: int  # the tree serves only packets with this l4ok
    wide: tuple[bool, bool]  # its rules' (source, destination) are wide (see partition)
    min_rule: int  # lowest rule position in the tree: skip it when a better match exists
    depth: int  # nodes on the longest root-to-leaf path (the leaf included)
    size: int  # boxes in the tree
    max_leaf: int  # most entries in one leaf


@dataclass(frozen=True)
class Forest:
    """nodes[i] = (dim, threshold, left, right): go left when value <= threshold; a leaf
    is (LEAF, 0, start, count) over `entries[start:start+count]` (indices of `boxes`,
    in priority order). All trees share `nodes` and `entries`."""

    nodes: tuple[tuple[int, int, int, int], ...]
    entries: tuple[int, ...]
    boxes: tuple[Box, ...]
    trees: tuple[TreeInfo, ...]

    @property
    def depth(self) -> int:
        return max((t.depth for t in self.trees), default=0)

    @property
    def max_leaf(self) -> int:
        return max((n[3] for n in self.nodes if n[0] == LEAF), default=0)

    def classify(self, point: Sequence[int]) -> Box | None:
        """The first box containing `point` (the reference for the BPF walk)."""
        best: Box | None = None
        for t in self.trees:
            if point[5] != t.l4ok:
                continue
            i = t.root
            while True:
                dim, thr, left, right = self.nodes[i]
                if dim == LEAF:
                    for e in self.entries[left:left + right]:
                        b = self.boxes[e]
                        if all(lo <= v <= hi for lo, v, hi in zip(b.lo, point, b.hi,
                                                                  strict=True)):
                            if best is None or b.rule < best.rule:
                                best = b
                            break
                    break
                i = left if point[dim] <= thr else right
        return best


def group_of(b: Box, l4ok: int) -> tuple[int, bool, bool]:
    """The tree a box belongs to, for packets with this l4ok."""
    return l4ok, b.hi[0] - b.lo[0] >= WIDE, b.hi[1] - b.lo[1] >= WIDE


def partition(boxes: Sequence[Box]) -> list[tuple[tuple[int, bool, bool], list[int]]]:
    """(l4ok, box indices) per group, keyed by (l4ok, src wide?, dst wide?).

    A tree serves packets of one l4ok value only, so that a rule can cover a tree's
    whole box: port rules' halves go to the trees of their l4ok, rules without a port
    match (l4ok any) to both. A box equal to an earlier one in the group is dropped
    (it can never be the first match)."""
    groups: dict[tuple[int, bool, bool], dict[tuple[tuple[int, ...], tuple[int, ...]], int]] = {}
    for i, b in enumerate(boxes):
        for l4ok in range(b.lo[5], b.hi[5] + 1):
            groups.setdefault(group_of(b, l4ok), {}).setdefault((b.lo[:5], b.hi[:5]), i)
    return [(k, list(v.values())) for k, v in sorted(groups.items(), reverse=True)]


def build_forest(boxes: Sequence[Box]) -> Forest:
    """Build the trees for `boxes` (priority order)."""
    boxes = tuple(boxes)
    los = [[b.lo[d] for b in boxes] for d in range(NDIMS)]
    his = [[b.hi[d] for b in boxes] for d in range(NDIMS)]
    nodes: list[list[int]] = []
    entries: list[int] = []
    trees = []
    parts = partition(boxes)
    if len(parts) > MAX_TREES:
        raise TreeTooBig(f"{len(parts)} rule groups")
    for (l4ok, *wide), ids in parts:
        root = len(nodes)
        blo, bhi = (*FULL_LO[:5], l4ok), (*FULL_HI[:5], l4ok)
        depth = _build(ids, los, his, nodes, entries, blo, bhi)
        max_leaf = max(n[3] for n in nodes[root:] if n[0] == LEAF)
        trees.append(TreeInfo(root, l4ok, (wide[0], wide[1]), min(boxes[i].rule for i in ids),
                              depth, len(ids), max_leaf))
    return Forest(tuple(tuple(n) for n in nodes), tuple(entries), boxes,  # type: ignore[misc]
                  tuple(trees))


def _gather(seq: list[int], ids: list[int]) -> tuple[int, ...]:
    if not ids:
        return ()
    if len(ids) == 1:
        return (seq[ids[0]],)
    return itemgetter(*ids)(seq)  # type: ignore[no-any-return]


def _build(ids0: list[int], los: list[list[int]], his: list[list[int]],
           nodes: list[list[int]], entries: list[int], blo0: tuple[int, ...],
           bhi0: tuple[int, ...]) -> int:
    """Append one tree (for the box blo0..bhi0) to nodes and entries; returns its depth."""
    depth = 0
    nodes.append([LEAF, 0, 0, 0])
    stack = [(len(nodes) - 1, ids0, blo0, bhi0, 1)]
    while stack:
        ni, ids, blo, bhi, d = stack.pop()
        ids = _cut_covered(ids, los, his, blo, bhi)
        depth = max(depth, d)
        split = _choose(ids, los, his, blo, bhi) if len(ids) > BINTH else None
        if split is None or d >= MAX_DEPTH:
            if len(ids) > LEAF_MAX:
                raise TreeTooBig(f"{len(ids)} rules left in one box at depth {d}")
            nodes[ni] = [LEAF, 0, len(entries), len(ids)]
            entries.extend(ids)
            continue
        dim, thr = split
        lo_d, hi_d = los[dim], his[dim]
        left = [r for r in ids if lo_d[r] <= thr]
        right = [r for r in ids if hi_d[r] > thr]
        li = len(nodes)
        nodes.append([LEAF, 0, 0, 0])
        nodes.append([LEAF, 0, 0, 0])
        nodes[ni] = [dim, thr, li, li + 1]
        lhi = bhi[:dim] + (thr,) + bhi[dim + 1:]
        rlo = blo[:dim] + (thr + 1,) + blo[dim + 1:]
        stack.append((li + 1, right, rlo, bhi, d + 1))
        stack.append((li, left, blo, lhi, d + 1))
    return depth


def _cut_covered(ids: list[int], los: list[list[int]], his: list[list[int]],
                 blo: tuple[int, ...], bhi: tuple[int, ...]) -> list[int]:
    """Drop every rule after the first one that covers the whole box."""
    # cheap prefilter on the source dimension (most rules are narrow there)
    lo0, hi0 = blo[0], bhi[0]
    cand = [k for k, (a, b) in enumerate(zip(_gather(los[0], ids), _gather(his[0], ids),
                                             strict=True)) if a <= lo0 and b >= hi0]
    for k in cand:
        r = ids[k]
        if all(los[d][r] <= blo[d] and his[d][r] >= bhi[d] for d in range(1, NDIMS)):
            return ids[:k + 1]
    return ids


def _choose(ids: list[int], los: list[list[int]], his: list[list[int]],
            blo: tuple[int, ...], bhi: tuple[int, ...]) -> tuple[int, int] | None:
    """(dim, threshold) minimising larger child + replicated rules; None when no rule
    boundary lies inside the box."""
    best: tuple[int, int, int, int] | None = None
    if len(ids) > SAMPLE:  # big nodes: judge splits on an evenly spaced sample
        ids = ids[::len(ids) // SAMPLE + 1]
    n = len(ids)
    for dim in SPLIT_DIMS:
        b_lo, b_hi = blo[dim], bhi[dim]
        if b_lo == b_hi:
            continue
        starts = sorted(_gather(los[dim], ids))
        ends = sorted(_gather(his[dim], ids))
        # thresholds: a rule end inside [b_lo, b_hi), or a rule start - 1 there
        e0, e1 = bisect_left(ends, b_lo), bisect_left(ends, b_hi)
        s0, s1 = bisect_right(starts, b_lo), bisect_right(starts, b_hi)
        cands = []
        for seq, a, z, shift in ((ends, e0, e1, 0), (starts, s0, s1, -1)):
            m = z - a
            if m > 0:
                cands.extend(seq[a + m * k // (QUANTILES + 1)] + shift
                             for k in range(1, QUANTILES + 1))
        for thr in cands:
            n_left = bisect_right(starts, thr)  # rules starting at or before thr
            n_right = n - bisect_right(ends, thr)  # rules ending after thr
            if n_left == n and n_right == n:
                continue
            key = (max(n_left, n_right) + (n_left + n_right - n), n_left + n_right, dim, thr)
            if best is None or key < best:
                best = key
    if best is None:
        return None
    return best[2], best[3]
