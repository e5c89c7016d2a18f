"""Runs of rules replaced by one classifier lookup (decision tree in two ARRAY maps).

Why: the linear walk costs a compare chain per rule; a run of interval rules (see
`bpfilter.passes.fivetuple`) becomes a tree walk whose cost depends on the tree's
depth, with the tree in maps so the program stays small and the verifier's work does
not grow with the rules. The lookup returns the matching rule's counter slot, so
per-rule counters stay exact; rules the tree never reaches are never counted, exactly
as in iptables' walk.

Map layouts (little-endian u32):
  nodes (key = node index, 16 bytes): dim, threshold, left, right; a leaf has
    dim = LEAF and left = first entry << 8 | entry count (one aligned word, so an
    in-place update switches a leaf with a single store). Tree roots are constants
    in the program (a forest: see passes/dtree.py).
  rules (key = entry index, 64 bytes): (lo, hi) per dimension in `DIMS` order,
    then action (0 ACCEPT, 1 DROP, 2 hotdrop), the counter slot, the rule's position
    in the run (lowest wins across trees) and padding.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from llvmlite import ir

from bpfilter.backend.gen import I32, PTR, BPF_FUNC_map_lookup_elem, Gen
from bpfilter.backend.mapdata import MapContents
from bpfilter.backend.packet import Packet, PacketView
from bpfilter.backend.runs import Step, plan_steps
from bpfilter.ir import Chain, Rule, Table
from bpfilter.passes.dtree import (
    LEAF,
    Forest,
    TreeInfo,
    TreeTooBig,
    build_forest,
)
from bpfilter.passes.fivetuple import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    L4_HEADER,
    NDIMS,
    PORT_NONE,
    Box,
    rule_boxes,
)
from bpfilter.passes.gcpause import paused_gc
from bpfilter.passes.shadow import remove_shadowed

MIN_RUN = int(os.environ.get("BPFILTER_MIN_RUN", "16"))  # shorter runs: linear code wins
NODE = struct.Struct("<4I")
RULE = struct.Struct(f"<{2 * NDIMS + 4}I")
ACTION_OFF = 8 * NDIMS
SLOT_OFF = ACTION_OFF + 4
POS_OFF = ACTION_OFF + 8
NO_RULE = 0xFFFFFFFF
LEAF_SLACK = 4  # entries a leaf may grow by through in-place updates (update.py)


def check_order(t: TreeInfo) -> tuple[int, ...]:
    """Dimensions in the order a tree's leaf scan compares them: a wide address is a
    poor filter in its own tree (nearly every entry passes it), so it goes last."""
    narrow = [d for d, wide in zip((0, 1), t.wide, strict=True) if not wide]
    wide = [d for d, w in zip((0, 1), t.wide, strict=True) if w]
    return (*narrow, 4, 2, 3, *wide, 5)


@dataclass(frozen=True)
class TreeLookup:
    """Rules `first`..`last` (1-based) of `chain`, classified by `tree`."""

    chain: str
    first: int
    last: int
    nodes_map: str
    rules_map: str
    tree: Forest
    slots: tuple[int, ...]  # counter slot of each rule of the run, by run position
    shadowers: frozenset[int] = frozenset()  # run positions that hid another rule

    def contents(self) -> tuple[MapContents, MapContents]:
        """The two maps' contents (computed once: every program using the lookup
        shares them)."""
        cached = self.__dict__.get("_contents")
        if cached is None:
            cached = self._pack()
            object.__setattr__(self, "_contents", cached)
        return cached

    def _pack(self) -> tuple[MapContents, MapContents]:
        t = self.tree
        nodes = b"".join([NODE.pack(LEAF, 0, n[2] << 8 | n[3], 0) if n[0] == LEAF
                          else NODE.pack(*n) for n in t.nodes])
        pack, slots = RULE.pack, self.slots
        packed = [pack(b.lo[0], b.hi[0], b.lo[1], b.hi[1], b.lo[2], b.hi[2], b.lo[3], b.hi[3],
                       b.lo[4], b.hi[4], b.lo[5], b.hi[5], b.action, slots[b.rule], b.rule, 0)
                  for b in t.boxes]
        rules = b"".join([packed[e] for e in t.entries])
        room = len(t.entries) // 4 + 64  # in-place updates append changed leaves
        # all nodes are ONE array element: the walk indexes it directly instead of one
        # map lookup per level (an update rewrites the element: unchanged words are
        # written with their own value, a changed leaf word is one aligned store)
        return (MapContents(self.nodes_map, len(nodes), nodes),
                MapContents(self.rules_map, RULE.size, rules or bytes(RULE.size),
                            len(t.entries) + room))


def find_runs(rules: Sequence[Rule], min_run: int = MIN_RUN
              ) -> list[tuple[int, int, list[Box]]]:
    """(first, last, boxes) of each maximal run of >= min_run interval rules (1-based)."""
    runs: list[tuple[int, int, list[Box]]] = []
    cur: list[Box] = []
    start = 0

    def flush(last: int) -> None:
        if cur and last - start + 1 >= min_run:
            runs.append((start, last, list(cur)))
        cur.clear()

    for i, rule in enumerate(rules, 1):
        bs = rule_boxes(rule, i - start if cur else 0)
        if bs is None:
            flush(i - 1)
            continue
        if not cur:
            start = i
        cur.extend(bs)
    flush(len(rules))
    return runs


def steps_with_lookups(chain: Chain, lookups: Mapping[tuple[str, int], TreeLookup],
                       min_run: int) -> list[Step | TreeLookup]:
    """The chain's emit steps (runs.plan_steps) with each planned lookup replacing its
    rules; plan_steps only ever sees the rules between lookups."""
    mine = sorted((lk for (c, _), lk in lookups.items() if c == chain.name),
                  key=lambda lk: lk.first)
    if not mine:
        return list(plan_steps(chain, min_run))
    out: list[Step | TreeLookup] = []
    pos = 1
    for lk in [*mine, None]:
        end = lk.first if lk is not None else len(chain.rules) + 1
        if pos < end:
            part = replace(chain, rules=chain.rules[pos - 1:end - 1])
            out.extend(_shift(s, pos - 1) for s in plan_steps(part, min_run))
        if lk is not None:
            out.append(lk)
            pos = lk.last + 1
    return out


def _shift(step: Step, by: int) -> Step:
    if isinstance(step, int):
        return step + by
    return replace(step, first=step.first + by,
                   leaves=tuple((v, n + by) for v, n in step.leaves))


@paused_gc
def plan_lookups(table: Table, slot: Callable[[str, int], int], min_run: int = MIN_RUN
                 ) -> dict[tuple[str, int], TreeLookup]:
    """Every run of every chain that becomes a tree lookup, keyed by (chain, first)."""
    return _plan_lookups(table, slot, min_run)


def _plan_lookups(table: Table, slot: Callable[[str, int], int], min_run: int
                  ) -> dict[tuple[str, int], TreeLookup]:
    out: dict[tuple[str, int], TreeLookup] = {}
    for chain in table.chains:
        for first, last, boxes in find_runs(chain.rules, min_run):
            shadowers: set[int] = set()
            try:
                tree = build_forest(remove_shadowed(boxes, shadowers))
            except TreeTooBig:
                continue
            k = len(out)
            slots = tuple(slot(chain.name, n) for n in range(first, last + 1))
            out[(chain.name, first)] = TreeLookup(chain.name, first, last, f"lk{k}_nodes",
                                                  f"lk{k}_rules", tree, slots,
                                                  frozenset(shadowers))
    return out


@dataclass
class Exits:
    """Where a lookup's outcomes go in the emitted chain walk."""

    key: ir.Value  # the emitter's stack slot for the counter index
    count_accept: ir.Block
    count_drop: ir.Block
    hotdrop: ir.Block
    nomatch: ir.Block


def emit_tree_lookup(g: Gen, pkt: Packet, lk: TreeLookup, ex: Exits) -> None:
    """Emit the walk of `lk`'s trees from the current block; every path leaves to `ex`."""
    b = g.b
    fields = _packet_fields(g, PacketView(g, pkt))
    best = g.stack(8, "lkbest", zero=False)  # (rule position, entry index) of the best match
    b.store(I32(NO_RULE), best, align=4)
    b.store(I32(0), g.ptr(best, 4), align=4)
    zero = g.stack(4, "lkzero")
    nodes = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(lk.nodes_map), zero])
    g.require(b.icmp_unsigned("!=", nodes, ir.Constant(PTR, None)), ex.nomatch, "lk.nodes")
    for t in lk.tree.trees:
        _emit_tree(g, fields, best, nodes, lk, t, ex)
    b.store(g.load(best, 4, I32, align=4), g.ptr(fields, 24), align=4)
    found = b.icmp_unsigned("!=", g.load(best, 0, I32, align=4), I32(NO_RULE))
    g.require(found, ex.nomatch, "lk.found")
    q = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(lk.rules_map), g.ptr(fields, 24)])
    g.require(b.icmp_unsigned("!=", q, ir.Constant(PTR, None)), ex.nomatch, "lk.best")
    b.store(g.load(q, SLOT_OFF, I32, align=4), ex.key, align=4)
    sw = b.switch(g.load(q, ACTION_OFF, I32, align=4), ex.hotdrop)
    sw.add_case(I32(0), ex.count_accept)
    sw.add_case(I32(1), ex.count_drop)
    g.at(g.block("lk.unreachable"))
    b.unreachable()


def _emit_tree(g: Gen, fields: ir.Value, best: ir.Value, nodes: ir.Value, lk: TreeLookup,
               t: TreeInfo, ex: Exits) -> None:
    """Walk one tree; a match better than `best` updates it. Continues in a new block."""
    b = g.b
    done = g.block("lk.tree_done")
    # each tree serves one l4ok value (normal packets, or unreadable L4 headers)
    g.require(b.icmp_unsigned("==", g.load(fields, 20, I32, align=4), I32(t.l4ok)), done,
              "lk.l4ok")
    g.require(b.icmp_unsigned(">", g.load(best, 0, I32, align=4), I32(t.min_rule)), done,
              "lk.better")
    key = g.stack(4, "lkkey", zero=False)
    pre = b.block
    walk, inner, leaf = g.block("lk.walk"), g.block("lk.inner"), g.block("lk.leaf")
    b.branch(walk)

    g.at(walk)
    i = b.phi(I32, "depth")
    n = b.phi(I32, "node")
    i.add_incoming(I32(0), pre)
    n.add_incoming(I32(t.root), pre)
    g.require(b.icmp_unsigned("<", n, I32(len(lk.tree.nodes))), done, "lk.inside")
    p = g.ptr(nodes, b.shl(b.zext(n, ir.IntType(64)), ir.Constant(ir.IntType(64), 4)))
    dim = g.load(p, 0, I32, align=4)
    b.cbranch(b.icmp_unsigned("==", dim, I32(LEAF)), leaf, inner)

    g.at(inner)
    off = b.zext(b.shl(b.and_(dim, I32(7)), I32(2)), ir.IntType(64))
    v = g.load(fields, off, I32, align=4)
    go_left = b.icmp_unsigned("<=", v, g.load(p, 4, I32, align=4))
    nxt = b.select(go_left, g.load(p, 8, I32, align=4), g.load(p, 12, I32, align=4))
    i1 = b.add(i, I32(1))
    i.add_incoming(i1, b.block)
    n.add_incoming(nxt, b.block)
    # bounds: this tree's own depth and largest leaf (the verifier walks each loop
    # iteration, so tight bounds keep verification short)
    b.cbranch(b.icmp_unsigned("<", i1, I32(t.depth)), walk, done)

    g.at(leaf)
    packed = g.load(p, 8, I32, align=4)
    start = b.lshr(packed, I32(8))
    count = b.and_(packed, I32(0xFF))
    scan, hit, step = g.block("lk.scan"), g.block("lk.hit"), g.block("lk.step")
    b.branch(scan)
    g.at(scan)
    j = b.phi(I32, "entry")
    j.add_incoming(I32(0), leaf)
    g.require(b.icmp_unsigned("<", j, count), done, "lk.more")
    entry = b.add(start, j)
    b.store(entry, key, align=4)
    q = g.helper(BPF_FUNC_map_lookup_elem, PTR, [g.map_ref(lk.rules_map), key])
    g.require(b.icmp_unsigned("!=", q, ir.Constant(PTR, None)), done, "lk.rule")
    pos = g.load(q, POS_OFF, I32, align=4)
    # entries are in priority order: nothing after a worse one can win
    g.require(b.icmp_unsigned("<", pos, g.load(best, 0, I32, align=4)), done, "lk.cand")
    for d in check_order(t):
        fv = g.load(fields, 4 * d, I32, align=4)
        g.require(b.icmp_unsigned(">=", fv, g.load(q, 8 * d, I32, align=4)), step, "lk.lo")
        g.require(b.icmp_unsigned("<=", fv, g.load(q, 8 * d + 4, I32, align=4)), step, "lk.hi")
    b.branch(hit)

    g.at(hit)
    b.store(pos, best, align=4)
    b.store(entry, g.ptr(best, 4), align=4)
    b.branch(done)

    g.at(step)
    j1 = b.add(j, I32(1))
    j.add_incoming(j1, step)
    b.cbranch(b.icmp_unsigned("<", j1, I32(t.max_leaf + LEAF_SLACK)), scan, done)
    g.at(done)


def _packet_fields(g: Gen, pkt: PacketView) -> ir.Value:
    """Store the packet's point (see fivetuple.packet_point) into an 8 x u32 stack
    array; the walk indexes it by dimension."""
    b = g.b
    f = g.stack(32, "lkfields", zero=False)
    src = b.bswap(g.raw32(pkt.ip, 12))
    dst = b.bswap(g.raw32(pkt.ip, 16))
    proto, fragoff, l4_len = pkt.proto, pkt.fragoff, pkt.l4_len
    is_tcp = b.icmp_unsigned("==", proto, I32(IPPROTO_TCP))
    is_udp = b.icmp_unsigned("==", proto, I32(IPPROTO_UDP))
    need = b.select(is_tcp, I32(L4_HEADER[IPPROTO_TCP]),
                    b.select(is_udp, I32(L4_HEADER[IPPROTO_UDP]), I32(0)))
    first = b.icmp_unsigned("==", fragoff, I32(0))
    too_short = b.and_(first, b.icmp_unsigned("<", l4_len, need))
    evil = b.and_(is_tcp, b.icmp_unsigned("==", fragoff, I32(1)))
    short = b.or_(too_short, evil)
    has_ports = b.and_(b.and_(b.or_(is_tcp, is_udp), first), b.not_(short))
    sport = b.select(has_ports, g.be16(pkt.l4, 0), I32(PORT_NONE))
    dport = b.select(has_ports, g.be16(pkt.l4, 2), I32(PORT_NONE))
    l4ok = b.zext(b.not_(short), I32)
    for d, val in enumerate((src, dst, proto, sport, dport, l4ok, I32(0), I32(0))):
        b.store(val, g.ptr(f, 4 * d), align=4)
    return f
