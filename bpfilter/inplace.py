"""A re-restore that changes only rules held by tree lookups: the live maps are rewritten.

Why: recompiling, verifying and attaching a 10k-rule table costs about a second for a
one-rule change; `LiveLookup.replace` (backend/lookup_update.py) writes the same
change into the pinned lookup maps in milliseconds, and the attached programs never
change. The pipeline (`pipeline._apply_in_place`) does the journalled write; this
module decides whether it is possible and rebuilds the mirror of what the maps hold.

The mirror: the maps were built from the ruleset compiled last (`base_table`: the
loaded text with the in-place changes since recorded in `LoadedState.inplace_log`
reverted). Trees are built deterministically, so `plan_lookups(base)` gives the same
trees, and replaying the log's replacements (pure) gives exactly the live layout; the
replayed leaves are checked against the live nodes element before anything is written,
and any mismatch means "recompile" (never a wrong write).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bpfilter.backend.lookup import NODE, TreeLookup, plan_lookups
from bpfilter.backend.lookup_update import LiveLookup, changes_in_place
from bpfilter.backend.mapdata import update_batch
from bpfilter.backend.plan import plan_table
from bpfilter.frontend.parser import parse_restore
from bpfilter.frontend.printer import print_rule
from bpfilter.ir import BUILTIN_CHAINS, Counters, Family, Rule, Ruleset, Table
from bpfilter.loader import syscall as sc
from bpfilter.loader.maps import Map
from bpfilter.passes.dtree import LEAF
from bpfilter.state import LoadedState, StateStore

ZERO_KEY = bytes(4)
COUNTER = struct.Struct("=QQ")


def parse_rule(line: str, chain: str, family: Family) -> Rule:
    """One logged ``-A CHAIN ...`` line back as a Rule."""
    builtin = BUILTIN_CHAINS["filter"]
    text = ("*filter\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in builtin)
            + ("" if chain in builtin else f":{chain} - [0:0]\n") + line + "\nCOMMIT\n")
    t = parse_restore(text, family=family, filename="<in-place log>").table("filter")
    assert t is not None
    c = t.chain(chain)
    assert c is not None and len(c.rules) == 1
    return c.rules[0]


def _set_rule(table: Table, chain: str, number: int, rule: Rule) -> Table:
    chains = tuple(replace(c, rules=c.rules[:number - 1] + (rule,) + c.rules[number:])
                   if c.name == chain else c for c in table.chains)
    return replace(table, chains=chains)


def base_table(current: Table, log: Sequence[Sequence], family: Family) -> Table:
    """The table the live maps were compiled from: `current` with the logged in-place
    changes reverted (newest first)."""
    for chain, first, position, old_line, _ in reversed(log):
        current = _set_rule(current, chain, first + position, parse_rule(old_line, chain, family))
    return current


def state_tables(text: str) -> list[str]:
    """Names of the tables in a saved ruleset text (its ``*name`` lines), in order."""
    return [line[1:].strip() for line in text.splitlines() if line.startswith("*")]


def current_from_text(old_text: str, new_text: str, new: Table, family: Family
                      ) -> Table | None:
    """The loaded filter table, rebuilt from the new one: both texts are canonical
    iptables-save output, so where every line but some ``-A`` lines is the same (same
    chains, policies, rule counts), the loaded table is the new one with those rules
    parsed back from the old lines. None when the shapes differ (then: recompile)."""
    old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
    if len(old_lines) != len(new_lines):
        return None
    numbers: dict[str, int] = {}
    current = new
    for a, b in zip(old_lines, new_lines, strict=True):
        chain = b.split(" ", 2)[1] if b.startswith("-A ") else None
        if chain is not None:
            numbers[chain] = numbers.get(chain, 0) + 1
        if a == b:
            continue
        if chain is None or not a.startswith(f"-A {chain} "):
            return None
        try:
            rule = parse_rule(a, chain, family)
        except Exception:  # noqa: BLE001 - e.g. a jump to a chain: not a lookup rule anyway
            return None
        current = _set_rule(current, chain, numbers[chain], rule)
    return current


def eligible(old: LoadedState | None, loaded: Sequence[str], new: Ruleset, flavor: str,
             netfilter_tables: int, handoff: bool, ifaces: Sequence[str],
             noflush: bool) -> bool:
    """Cheap checks before any tree is rebuilt: one filter table, all in BPF, IPv4 (the
    only family with lookups), same flavor and interfaces as what is loaded."""
    if old is None or not old.programs or old.netfilter_tables or netfilter_tables:
        return False
    if handoff or noflush or new.family is not Family.IPV4:
        return False
    if [t.name for t in new.tables] != ["filter"] or list(loaded) != ["filter"]:
        return False
    flavors = {p.flavor for p in old.programs}
    if flavor == "nf":
        return flavors == {"nf"}
    return flavor in flavors and (list(ifaces) or ["+"]) == old.iface_patterns


@dataclass
class Prepared:
    """The replacements to write, on live lookups whose mirrors match the kernel."""

    changes: list[tuple[TreeLookup, int, Rule]]
    lives: dict[str, LiveLookup]  # by nodes map name
    pins: dict[str, str]  # map name → pin
    log: list[list] = field(default_factory=list)  # entries this update appends
    maps: list[Map] = field(default_factory=list)

    def backups(self) -> list[tuple[str, str, str]]:
        """(pin, key, value) of each nodes element the changes rewrite, for the journal."""
        touched = {lk.nodes_map for lk, _, _ in self.changes}
        return [(self.pins[n], ZERO_KEY.hex(), bytes(self.lives[n].blob).hex())
                for n in sorted(touched)]

    def close(self) -> None:
        for m in self.maps:
            m.close()


def prepare(store: StateStore, old: LoadedState, current: Table, new: Table,
            family: Family) -> Prepared | None:
    """The in-place replacements turning `current` (loaded) into `new`, with their live
    lookups ready; None when anything needs a recompile."""
    base = base_table(current, old.inplace_log, family)
    lookups = plan_lookups(base, plan_table(base, family).slot)
    changes = changes_in_place(current, new, lookups)
    if changes is None:
        return None
    pins = {n: pin for p in old.programs for n, pin in p.map_pins.items()}
    by_run = {(lk.chain, lk.first): lk for lk in lookups.values()}
    needed = {lk.nodes_map: lk for lk, _, _ in changes}
    for chain, first, *_ in old.inplace_log:
        lk = by_run.get((chain, first))
        if lk is None:
            return None
        needed[lk.nodes_map] = lk
    out = Prepared(changes, {}, pins)
    try:
        for name, lk in needed.items():
            if name not in pins or lk.rules_map not in pins:
                out.close()
                return None
            nodes = Map.from_pin(store.pin_path(pins[name]))
            out.maps.append(nodes)
            rules = Map.from_pin(store.pin_path(pins[lk.rules_map]))
            out.maps.append(rules)
            out.lives[name] = LiveLookup(lk, nodes, rules)
        for chain, first, position, _, new_line in old.inplace_log:
            live = out.lives[by_run[(chain, first)].nodes_map]
            patch = live.plan_replace(position, parse_rule(new_line, chain, family))
            if patch is None:
                out.close()
                return None
            live.apply(position, patch)
        for live in out.lives.values():
            if not _mirror_matches(live):
                out.close()
                return None
    except BaseException:
        out.close()
        raise
    for lk, position, rule in changes:
        chain = current.chain(lk.chain)
        assert chain is not None
        cur_rule = chain.rules[lk.first + position - 1]
        out.log.append([lk.chain, lk.first, position, print_rule(cur_rule, lk.chain, family),
                        print_rule(rule, lk.chain, family)])
    return out


def _mirror_matches(live: LiveLookup) -> bool:
    """The replayed leaves are what the kernel's nodes element holds (and the element
    becomes the blob `replace` rewrites)."""
    raw = live.nodes_map.lookup(ZERO_KEY)
    if raw is None:
        return False
    blob = bytearray(live.lk.contents()[0].values)
    for i, (dim, _, start, count) in enumerate(live.nodes):
        if dim == LEAF:
            struct.pack_into("<I", blob, i * NODE.size + 8, start << 8 | count)
    if bytes(blob) != bytes(raw[:len(blob)]):
        return False
    live.blob = bytearray(raw[:len(blob)])
    return True


def reset_counters(store: StateStore, old: LoadedState, new: Ruleset,
                   with_input: bool) -> None:
    """What iptables-restore does to a replaced table's counters: every slot restarts at
    0, or at the input's [packets:bytes] with -c. One batched write per counters map."""
    table = new.table("filter")
    ncpu = sc.possible_cpus()
    done: set[str] = set()
    for p in old.programs:
        if p.counters_pin in done:
            continue
        done.add(p.counters_pin)
        m = Map.from_pin(store.pin_path(p.counters_pin))
        try:
            n = m.spec.max_entries
            update_batch(m, struct.pack(f"<{n}I", *range(n)), bytes(n * ncpu * COUNTER.size))
            if not with_input or table is None:
                continue
            for index, (chain_name, number) in enumerate(p.counter_slots):
                chain = table.chain(chain_name)
                if chain is None:
                    continue
                c: Counters | None = chain.counters if number is None \
                    else chain.rules[number - 1].counters
                if c and (c.packets or c.bytes):
                    values = [COUNTER.pack(c.packets, c.bytes)] + [COUNTER.pack(0, 0)] * (ncpu - 1)
                    m.update(struct.pack("=I", index), values)
        finally:
            m.close()
