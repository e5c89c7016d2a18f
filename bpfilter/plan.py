"""Decide, rule by rule, where each part of a ruleset runs: BPF or netfilter.

The planner is pure (no kernel access): it asks the backend which rules it can
compile and applies the fallback policy. The policy is the simplest sound one:
a table runs in BPF only when every rule of it compiles; otherwise the whole
table goes to the real netfilter (iptables-restore), so no packet can see half
of a table in each place. Only the filter table is compiled today.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from bpfilter import backend
from bpfilter.ir import Family, Ruleset, Table

BPF_TABLES = frozenset({"filter"})
HOOKS = ("auto", "xdp", "tc", "nf")


@dataclass(frozen=True)
class RulePlacement:
    """Where one rule runs and why (the rows of `bpfilter plan --json`)."""

    table: str
    chain: str
    rule: int  # 1-based position in its chain, as `iptables -L --line-numbers`
    line: int | None
    placement: str  # "bpf" | "netfilter"
    hook: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    family: Family
    flavor: str  # the BPF flavor chosen for tables that run in BPF
    bpf_tables: tuple[Table, ...]
    netfilter_tables: tuple[Table, ...]
    rules: tuple[RulePlacement, ...]

    def to_json(self) -> str:
        return json.dumps({"flavor": self.flavor, "rules": [asdict(r) for r in self.rules]},
                          indent=1)

    def summary(self) -> str:
        total = len(self.rules)
        in_bpf = sum(r.placement == "bpf" for r in self.rules)
        return f"{in_bpf}/{total} rules in BPF ({self.flavor})"


def choose_flavor(hook: str) -> str:
    """`auto` picks the fastest hook that keeps iptables' exact meaning.

    Today that is the netfilter BPF link at each chain's own hook: XDP and TC run
    before routing, defragmentation and the other tables, so a verdict moves
    there only when the planner can prove it does not change (not done yet).
    """
    if hook not in HOOKS:
        raise ValueError(f"unknown hook {hook!r}; expected one of {', '.join(HOOKS)}")
    return "nf" if hook == "auto" else hook


def _hook_name(flavor: str, chain: str) -> str:
    return f"nf:{chain}" if flavor == "nf" else f"{flavor}:ingress"


def plan_ruleset(ruleset: Ruleset, hook: str = "auto") -> Plan:
    flavor = choose_flavor(hook)
    bpf_tables: list[Table] = []
    nf_tables: list[Table] = []
    rows: list[RulePlacement] = []
    for table in ruleset.tables:
        reasons = _unsupported(table, ruleset.family)
        in_bpf = table.name in BPF_TABLES and not reasons
        (bpf_tables if in_bpf else nf_tables).append(table)
        for chain in table.chains:
            for number, rule in enumerate(chain.rules, start=1):
                line = rule.location.line if rule.location else None
                if in_bpf:
                    reason = "compiled into the table's BPF program"
                    rows.append(RulePlacement(table.name, chain.name, number, line, "bpf",
                                              _hook_name(flavor, chain.name), reason))
                    continue
                if table.name not in BPF_TABLES:
                    reason = f"the {table.name} table runs in netfilter (only filter is compiled)"
                elif (chain.name, number) in reasons:
                    reason = reasons[(chain.name, number)]
                else:
                    (c, n), why = next(iter(reasons.items()))
                    reason = f"table falls back to netfilter because {c} rule {n}: {why}"
                rows.append(RulePlacement(table.name, chain.name, number, line, "netfilter",
                                          None, reason))
    return Plan(ruleset.family, flavor, tuple(bpf_tables), tuple(nf_tables), tuple(rows))


def _unsupported(table: Table, family: Family) -> dict[tuple[str, int], str]:
    """Rules of a table the backend cannot compile, keyed by (chain, rule number)."""
    if table.name not in BPF_TABLES:
        return {}
    found: dict[tuple[str, int], str] = {}
    for chain in table.chains:
        for number, rule in enumerate(chain.rules, start=1):
            why = backend.unsupported_reason(rule, family)
            if why:
                found[(chain.name, number)] = why
    return found
