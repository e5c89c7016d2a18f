"""One-rule changes to a loaded tree lookup, written into its maps in place.

Why: rebuilding the trees and reloading the program for one changed rule costs
seconds at 10k rules; replacing one rule of a run only touches the leaves whose
boxes the old and new rule overlap. `LiveLookup.replace(position, rule)` computes
those leaves (pure), appends their new entry lists to the rules map's spare room,
then switches each leaf node to its new list.

Atomicity (documented limit): all nodes are one array element; the update rewrites it
and the only words that change are the leaves' packed (start << 8 | count), each one
aligned 4-byte store (the rest is rewritten with its own value), so a packet reads
either the old or the new list of a leaf, never a mix, and entries it may read are
never overwritten (new lists go to unused room). A packet racing with the few node writes
of one update may see the old rule in one leaf and the new one in another (for the
microseconds the update takes), as with any multi-element map update. When a change
cannot be done in place (the rule is not a 5-tuple rule, its tree does not exist, a
leaf would outgrow the program's bound, the map is full, or the old rule covered a
whole leaf or hid other rules, which would have to come back) `replace` returns False
and changes nothing: the caller recompiles.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from bpfilter.backend.lookup import LEAF_SLACK, NODE, RULE, TreeLookup
from bpfilter.backend.mapdata import update_batch
from bpfilter.ir import Rule, Table
from bpfilter.loader.maps import Map
from bpfilter.passes.dtree import LEAF, LEAF_MAX, TreeInfo, group_of
from bpfilter.passes.fivetuple import FULL_HI, FULL_LO, Box, rule_boxes


@dataclass(frozen=True)
class Patch:
    """What one change writes: new rules-map entries from `first_entry` on, then the
    leaf nodes (index → packed word)."""

    first_entry: int
    entries: bytes
    leaves: dict[int, tuple[int, int]]  # node index → (start, count)
    ids: list[int]  # box index of each new entry, in order
    new_boxes: tuple[Box, ...]  # the rule's boxes (box indices from len(boxes) on)


class LiveLookup:
    """A loaded lookup (its two maps) and a mirror of what they hold."""

    def __init__(self, lk: TreeLookup, nodes_map: Map, rules_map: Map) -> None:
        t = lk.tree
        self.lk = lk
        self.nodes_map, self.rules_map = nodes_map, rules_map
        self.nodes = [list(n) for n in t.nodes]
        self.entries = list(t.entries)  # entry index → box index (grows with updates)
        self.boxes = list(t.boxes)
        self.capacity = rules_map.spec.max_entries
        self.trees: dict[tuple[int, bool, bool], TreeInfo] = {
            (ti.l4ok, *ti.wide): ti for ti in t.trees}  # type: ignore[misc]
        self.blob = bytearray(lk.contents()[0].values)  # the nodes element as written
        self.by_rule: dict[int, list[int]] = {}  # run position → its live box indices
        for i, b in enumerate(self.boxes):
            self.by_rule.setdefault(b.rule, []).append(i)

    # --- pure part ----------------------------------------------------------------
    def plan_replace(self, position: int, rule: Rule) -> Patch | None:
        """The writes that make run position `position` (0-based) be `rule`, or None."""
        if position in self.lk.shadowers or not 0 <= position < len(self.lk.slots):
            return None
        new = rule_boxes(rule, position)
        if new is None:
            return None
        old_ids = set(self.by_rule.get(position, ()))
        new_ids = list(range(len(self.boxes), len(self.boxes) + len(new)))
        boxes = self.boxes + list(new)
        leaves: dict[int, list[int]] = {}  # node → new entry list
        bounds: dict[int, tuple[tuple[int, ...], tuple[int, ...], TreeInfo]] = {}
        for i in old_ids:
            b = boxes[i]
            for l4ok in range(b.lo[5], b.hi[5] + 1):
                ti = self.trees.get(group_of(b, l4ok))
                if ti is None:
                    continue
                for node, lo, hi in self._leaves(ti, b):
                    cur = leaves.get(node) or self._leaf_ids(node)
                    if i in cur and b.covers(lo, hi):
                        return None  # it cut the rules behind it here
                    leaves[node] = [e for e in cur if e not in old_ids]
                    bounds[node] = (lo, hi, ti)
        for i in new_ids:
            b = boxes[i]
            for l4ok in range(b.lo[5], b.hi[5] + 1):
                ti = self.trees.get(group_of(b, l4ok))
                if ti is None:
                    return None
                for node, lo, hi in self._leaves(ti, b):
                    cur = [e for e in (leaves.get(node) or self._leaf_ids(node))
                           if e not in old_ids]
                    at = next((k for k, e in enumerate(cur) if boxes[e].rule > position),
                              len(cur))
                    cur.insert(at, i)
                    if b.covers(lo, hi):
                        cur = cur[:at + 1]  # nothing behind it can match here
                    leaves[node] = cur
                    bounds[node] = (lo, hi, ti)
        start = len(self.entries)
        out: dict[int, tuple[int, int]] = {}
        packed = bytearray()
        all_ids: list[int] = []
        for node, ids in leaves.items():
            ti = bounds[node][2]
            if len(ids) > min(ti.max_leaf + LEAF_SLACK, LEAF_MAX):
                return None
            out[node] = (start + len(all_ids), len(ids))
            all_ids += ids
            for e in ids:
                packed += self._pack(boxes[e])
        if start + len(all_ids) > self.capacity:
            return None
        return Patch(start, bytes(packed), out, all_ids, tuple(new))

    def _leaf_ids(self, node: int) -> list[int]:
        _, _, start, count = self.nodes[node]
        return self.entries[start:start + count]

    def _leaves(self, ti: TreeInfo, b: Box):  # noqa: ANN202 - generator of (node, lo, hi)
        """Leaves of tree `ti` whose box overlaps `b`, with their boxes."""
        todo = [(ti.root, (*FULL_LO[:5], ti.l4ok), (*FULL_HI[:5], ti.l4ok))]
        while todo:
            node, lo, hi = todo.pop()
            dim, thr, left, right = self.nodes[node]
            if dim == LEAF:
                yield node, lo, hi
                continue
            if b.lo[dim] <= thr:
                todo.append((left, lo, hi[:dim] + (thr,) + hi[dim + 1:]))
            if b.hi[dim] > thr:
                todo.append((right, lo[:dim] + (thr + 1,) + lo[dim + 1:], hi))

    def _pack(self, b: Box) -> bytes:
        vals: list[int] = []
        for lo, hi in zip(b.lo, b.hi, strict=True):
            vals += (lo, hi)
        return RULE.pack(*vals, b.action, self.lk.slots[b.rule], b.rule, 0)

    # --- kernel part --------------------------------------------------------------
    def replace(self, position: int, rule: Rule) -> bool:
        """Make run position `position` be `rule` in the live maps; False: not possible
        in place (nothing was written)."""
        patch = self.plan_replace(position, rule)
        if patch is None:
            return False
        n = len(patch.ids)
        keys = b"".join(k.to_bytes(4, "little")
                        for k in range(patch.first_entry, patch.first_entry + n))
        update_batch(self.rules_map, keys, patch.entries)  # unused room: nobody reads it yet
        self.apply(position, patch)
        # the nodes are one element: rewrite it (only the changed leaf words differ)
        for node, (start, count) in patch.leaves.items():
            struct.pack_into("<I", self.blob, node * NODE.size + 8, start << 8 | count)
        self.nodes_map.update(bytes(4), bytes(self.blob))
        return True

    def apply(self, position: int, patch: Patch) -> None:
        """Update the mirror after `patch` was written."""
        for node, (start, count) in patch.leaves.items():
            self.nodes[node] = [LEAF, 0, start, count]
        first = len(self.boxes)
        self.boxes += list(patch.new_boxes)
        self.by_rule[position] = list(range(first, len(self.boxes)))
        self.entries += patch.ids

    def classify(self, point: tuple[int, ...]) -> Box | None:
        """What the program answers for `point` (the mirror's view; for tests)."""
        best: Box | None = None
        for ti in self.trees.values():
            if point[5] != ti.l4ok:
                continue
            node = ti.root
            while self.nodes[node][0] != LEAF:
                dim, thr, left, right = self.nodes[node]
                node = left if point[dim] <= thr else right
            for e in self._leaf_ids(node):
                b = self.boxes[e]
                if best is not None and b.rule >= best.rule:
                    break
                if all(lo <= v <= hi for lo, v, hi in zip(b.lo, point, b.hi, strict=True)):
                    best = b
                    break
        return best


def changes_in_place(old: Table, new: Table, lookups: Mapping[tuple[str, int], TreeLookup]
                     ) -> list[tuple[TreeLookup, int, Rule]] | None:
    """The (lookup, run position, new rule) replacements that turn the loaded table
    `old` (compiled with `lookups`) into `new`, or None when anything else differs
    (chains, policies, rule counts, a changed rule outside every lookup run): then the
    caller recompiles. For a re-restore: `plan_lookups(old, slot)` rebuilds `lookups`
    deterministically from the loaded ruleset text."""
    if [(c.name, c.policy, len(c.rules)) for c in old.chains] != [
            (c.name, c.policy, len(c.rules)) for c in new.chains]:
        return None
    runs = {}
    for (chain, _), lk in lookups.items():
        for n in range(lk.first, lk.last + 1):
            runs[(chain, n)] = lk
    out = []
    for oc, nc in zip(old.chains, new.chains, strict=True):
        for n, (a, b) in enumerate(zip(oc.rules, nc.rules, strict=True), 1):
            if a.with_(counters=None) == b.with_(counters=None):
                continue
            lk = runs.get((oc.name, n))
            if lk is None:
                return None
            out.append((lk, n - lk.first, b))
    return out
