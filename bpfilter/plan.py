"""Decide, rule by rule, where each part of a ruleset runs: BPF or netfilter.

The planner is pure (no kernel access): it asks the backend which rules it can
compile and applies the fallback policy, per built-in chain of the filter table:

* The nf flavor puts one program at each of INPUT, FORWARD and OUTPUT, at the filter
  table's own hook and priority. The three hooks are independent (a packet meets at
  most one of them in the filter table), so each built-in chain can run either in
  BPF or in netfilter on its own: a chain goes to netfilter, whole, when any rule
  reachable from it (through its user chains) cannot be compiled; the netfilter copy
  of the table then holds that chain (and every user chain) while the chains run in
  BPF are empty with policy ACCEPT there, and the BPF copy has no such chain (its
  program accepts everything untouched). No packet sees half a chain in each place.
* xdp/tc run INPUT and FORWARD together before routing; they are used only when
  every rule compiles for that hook and nothing in raw/mangle/nat can change a
  packet's addresses, mark or route before the filter hooks; otherwise the plan
  falls back to nf (still BPF) and says why.
* Other tables (nat, mangle, raw, security) and IPv6 run in netfilter.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from bpfilter import backend
from bpfilter.backend.handoff import HANDOFF_CHAINS
from bpfilter.backend.plan import is_jump
from bpfilter.ir import Chain, Family, Rule, Ruleset, Table

BPF_TABLES = frozenset({"filter"})
HOOKS = ("auto", "xdp", "tc", "nf")
FILTER_CHAINS = ("INPUT", "FORWARD", "OUTPUT")
# Tables whose rules at these chains run before the filter table sees a packet and can
# change what an ingress (xdp/tc) program would have to assume (addresses, mark, route).
EARLIER_CHAINS = ("PREROUTING", "INPUT", "FORWARD")


@dataclass(frozen=True)
class RulePlacement:
    """Where one rule runs and why (the rows of `bpfilter plan --json`).

    placement: "bpf" (every hook that reaches it runs in BPF), "netfilter" (some
    hook that reaches it runs in netfilter), "unreachable" (no built-in chain
    jumps to its chain: it never runs anywhere).
    """

    table: str
    chain: str
    rule: int  # 1-based position in its chain, as `iptables -L --line-numbers`
    line: int | None
    placement: str
    hook: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    family: Family
    flavor: str  # the BPF flavor chosen for tables that run in BPF
    bpf_tables: tuple[Table, ...]
    netfilter_tables: tuple[Table, ...]
    rules: tuple[RulePlacement, ...]
    # filter chains in BPF *and* (whole) in netfilter, with per-packet hand-off between
    # them (backend/handoff.py): BPF decides what it can, the rest meets netfilter
    handoff_chains: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps({"flavor": self.flavor, "rules": [asdict(r) for r in self.rules]},
                          indent=1)

    def share(self, table: str = "filter") -> tuple[int, int]:
        """(rules of `table` that run in BPF, rules of `table` that run at all)."""
        rows = [r for r in self.rules if r.table == table and r.placement != "unreachable"]
        return sum(r.placement == "bpf" for r in rows), len(rows)

    def summary(self) -> str:
        total = len(self.rules)
        in_bpf = sum(r.placement == "bpf" for r in self.rules)
        fb, ft = self.share()
        return (f"{in_bpf}/{total} rules in BPF ({self.flavor}); "
                f"filter table: {fb}/{ft} reachable rules in BPF")


def choose_flavor(hook: str) -> str:
    """`auto` picks the fastest hook that keeps iptables' exact meaning.

    Today that is the netfilter BPF link at each chain's own hook: XDP and TC run
    before routing, defragmentation and the other tables, so a verdict moves
    there only when the user asks for it and `plan_ruleset` proves it sound.
    """
    if hook not in HOOKS:
        raise ValueError(f"unknown hook {hook!r}; expected one of {', '.join(HOOKS)}")
    return "nf" if hook == "auto" else hook


def _hook_name(flavor: str, chain: str) -> str:
    return f"nf:{chain}" if flavor == "nf" else f"{flavor}:ingress"


def reach(table: Table, root: str, family: Family) -> list[tuple[str, int]]:
    """(chain, rule number) of every rule reachable from `root`, each once; loops and
    jumps to missing chains stop the walk there (iptables refuses both anyway)."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        chain = table.chain(name)
        if chain is None:
            continue
        for i, rule in enumerate(chain.rules, 1):
            out.append((name, i))
            if is_jump(rule.target, family) and rule.target is not None:
                todo.append(rule.target.name)
    return out


def _always_handed_off(table: Table, family: Family, root: str) -> dict[tuple[str, int], str]:
    """Rules of a hand-off chain that no packet reaches in BPF: those after the first
    rule of `root` that hands off *every* packet reaching it (no condition is checked
    before its uncompilable part), e.g. `-A INPUT -m addrtype ... -j DROP` as rule 1.
    Maps each such rule to why, so the share counts them as netfilter's."""
    from bpfilter.backend.handoff import handoff_points

    chain = table.chain(root)
    points = handoff_points(table, family, root)
    if chain is None:
        return {}
    for k, rule in enumerate(chain.rules, 1):
        if points.get((root, k)) == 0 and _no_generic(rule):
            before = {x for n in range(1, k) for x in _reach_rule(table, root, n, family)}
            why = (f"every packet is handed to netfilter at {root} rule {k} before it "
                   "gets here")
            return {x: why for x in reach(table, root, family)
                    if x not in before and x != (root, k)}
    return {}


def _no_generic(rule: Rule) -> bool:
    return (rule.src is None and rule.dst is None and rule.in_iface is None
            and rule.out_iface is None and rule.fragment is None
            and (rule.protocol is None or rule.protocol.value == 0))


def _reach_rule(table: Table, chain: str, n: int, family: Family) -> list[tuple[str, int]]:
    """Rule n of `chain` and everything its jump reaches."""
    c = table.chain(chain)
    assert c is not None
    t = c.rules[n - 1].target
    out = [(chain, n)]
    if t is not None and is_jump(t, family):
        out += reach(table, t.name, family)
    return out


def _chain_reasons(table: Table, family: Family, flavor: str
                   ) -> dict[str, list[tuple[str, int, str]]]:
    """For each built-in chain: the reachable rules that cannot be compiled, with why."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for root in FILTER_CHAINS:
        if table.chain(root) is None:
            continue
        bad = []
        for c, n in reach(table, root, family):
            chain = table.chain(c)
            assert chain is not None
            why = backend.unsupported_reason(chain.rules[n - 1], family, flavor)
            why = why or _hook_reason(chain.rules[n - 1], root)
            if why:
                bad.append((c, n, why))
        out[root] = bad
    return out


def _hook_reason(rule: Rule, root: str) -> str | None:
    """Matches compiled at some hooks only (their `not_at`, e.g. addrtype at OUTPUT)."""
    from bpfilter.backend.matchers import matcher

    for m in rule.matches:
        if root in getattr(matcher(m.module), "not_at", ()):
            return f"match '{m.module}' is not compiled at {root} (see its matcher)"
    return None


def _earlier_tables_block_ingress(ruleset: Ruleset) -> str | None:
    """Why xdp/tc cannot be exact: a rule in raw/mangle/nat that runs before filter."""
    for t in ruleset.tables:
        if t.name == "filter":
            continue
        for name in EARLIER_CHAINS:
            c = t.chain(name)
            if c is not None and c.rules:
                return (f"{t.name}/{name} has rules that run before the filter table "
                        "(they may change addresses, mark or route): xdp/tc would not be "
                        "exact")
    return None


def _empty(chain: Chain) -> Chain:
    return replace(chain, policy="ACCEPT", rules=())


def plan_ruleset(ruleset: Ruleset, hook: str = "auto") -> Plan:
    flavor = choose_flavor(hook)
    note = ""
    filt = ruleset.table("filter") if "filter" in BPF_TABLES else None
    if filt is not None and flavor in ("xdp", "tc"):
        why = _earlier_tables_block_ingress(ruleset)
        if why is None and any(_chain_reasons(filt, ruleset.family, flavor).values()):
            why = "some rules need the nf hooks (or netfilter)"
        if why:
            note = f" (nf instead of {flavor}: {why})"
            flavor = "nf"
    bpf_tables: list[Table] = []
    nf_tables: list[Table] = []
    rows: list[RulePlacement] = []
    plan_handoff: frozenset[str] = frozenset()
    for table in ruleset.tables:
        if table is not filt:
            nf_tables.append(table)
            rows.extend(_rows_elsewhere(table))
            continue
        reasons = _chain_reasons(table, ruleset.family, flavor)
        bad = {c for c, why in reasons.items() if why}
        handoff = frozenset(bad & HANDOFF_CHAINS) if flavor == "nf" else frozenset()
        in_nf = bad - handoff  # whole chain in netfilter, none of it in BPF
        in_bpf = {c for c in reasons if c not in in_nf}
        if in_bpf:
            bpf_tables.append(replace(table, chains=tuple(
                c for c in table.chains if c.name not in in_nf)))
        if bad:
            nf_tables.append(replace(table, chains=tuple(
                _empty(c) if c.name in in_bpf - handoff else c for c in table.chains)))
        rows.extend(_filter_rows(table, ruleset.family, flavor, reasons, in_nf, handoff, note))
        plan_handoff = handoff
    return Plan(ruleset.family, flavor, tuple(bpf_tables), tuple(nf_tables), tuple(rows),
                plan_handoff)


def _rows_elsewhere(table: Table) -> list[RulePlacement]:
    why = (f"the {table.name} table runs in netfilter (only filter is compiled)"
           if table.name not in BPF_TABLES else "runs in netfilter")
    return [RulePlacement(table.name, chain.name, n, r.location.line if r.location else None,
                          "netfilter", None, why)
            for chain in table.chains for n, r in enumerate(chain.rules, 1)]


def _filter_rows(table: Table, family: Family, flavor: str,
                 reasons: dict[str, list[tuple[str, int, str]]], in_nf: set[str],
                 handoff: frozenset[str], note: str) -> list[RulePlacement]:
    roots: dict[tuple[str, int], list[str]] = {}
    for root in reasons:
        for key in reach(table, root, family):
            roots.setdefault(key, []).append(root)
    own = {(c, n): why for bad in reasons.values() for c, n, why in bad}
    blocked: dict[tuple[str, int], str] = {}
    for root in handoff:
        blocked.update(_always_handed_off(table, family, root))
    rows = []
    for chain in table.chains:
        for n, rule in enumerate(chain.rules, 1):
            line = rule.location.line if rule.location else None
            hooks = roots.get((chain.name, n), [])
            nf_roots = [r for r in hooks if r in in_nf]
            if not hooks:
                rows.append(RulePlacement(table.name, chain.name, n, line, "unreachable", None,
                                          "no built-in chain jumps here: never runs"))
            elif (chain.name, n) in own:
                via = (" — packets whose walk reaches it are handed to netfilter, which holds "
                       "the whole chain" if set(hooks) <= handoff else "")
                rows.append(RulePlacement(table.name, chain.name, n, line, "netfilter", None,
                                          own[(chain.name, n)] + via))
            elif not nf_roots and (chain.name, n) in blocked and not (
                    set(hooks) - handoff):
                rows.append(RulePlacement(table.name, chain.name, n, line, "netfilter", None,
                                          blocked[(chain.name, n)]))
            elif not nf_roots:
                where = ", ".join(_hook_name(flavor, r) for r in hooks)
                why = "compiled into the BPF program" + note
                if set(hooks) & handoff:
                    why += " (its chain hands packets it cannot decide to netfilter)"
                rows.append(RulePlacement(table.name, chain.name, n, line, "bpf", where, why))
            else:
                root = nf_roots[0]
                c, k, why = reasons[root][0]
                rows.append(RulePlacement(
                    table.name, chain.name, n, line, "netfilter", None,
                    f"{root} runs in netfilter because {c} rule {k}: {why}"))
    return rows
