"""Plan: which chains each program runs, counter slots, what the rules read.

Why a separate step: emit only walks a plan. A later pass can rewrite the plan
(e.g. replace a run of rules that differ in one field by one hash/LPM lookup) without
touching the emitter or the matchers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from bpfilter.backend.flavors import Needs
from bpfilter.backend.matchers import matcher
from bpfilter.backend.matchers.generic import uses_in_iface, uses_out_iface
from bpfilter.backend.model import CounterSlot, UnsupportedRule
from bpfilter.backend.runs import MIN_RUN
from bpfilter.frontend.extensions.base import target_extension
from bpfilter.ir import STANDARD_VERDICTS, Family, Rule, Table, Target

SUPPORTED_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN"})


def unsupported_reason(rule: Rule, family: Family, flavor: str | None = None) -> str | None:
    """Why `rule` cannot be compiled to BPF (None when it can).

    A target that is not a standard verdict and not a registered target extension
    is a jump to a user chain (its existence is checked by `compile_table`).
    `flavor` "xdp"/"tc": also refuse matches that read netfilter's own per-packet
    state (`nf_only` matchers: conntrack, mark, ...), exact only at the nf hooks.
    """
    if family != Family.IPV4:
        from bpfilter.backend.support6 import unsupported_reason6  # IPv6 (by H11)

        why6 = unsupported_reason6(rule)
        if why6:
            return why6
    for m in rule.matches:
        mc = matcher(m.module)
        if mc is None:
            return f"match '{m.module}' not supported by the BPF backend"
        why = mc.unsupported(m, rule)
        if why:
            return why
        if flavor in ("xdp", "tc") and getattr(mc, "nf_only", False):
            return (f"match '{m.module}' reads state netfilter computes before the filter "
                    "hooks (conntrack, mark, route): exact only at the nf hooks")
    t = rule.target
    if t is not None:
        if t.name in STANDARD_VERDICTS and t.name not in SUPPORTED_VERDICTS:
            return f"target {t.name} not supported by the BPF backend"
        if t.name not in STANDARD_VERDICTS and not is_jump(t, family):
            return f"target {t.name} not supported by the BPF backend"
    return None


def is_jump(t: Target | None, family: Family) -> bool:
    """A jump/goto to a user chain (not a verdict, not a target extension)."""
    if t is None or t.name in STANDARD_VERDICTS:
        return False
    return t.goto or target_extension(t.name, family) is None


@dataclass(frozen=True)
class TablePlan:
    """Table-wide facts shared by all programs compiled from one table."""

    table: Table
    slots: tuple[CounterSlot, ...]
    min_run: int = MIN_RUN  # rules in a run of exact values before it becomes a search

    def slot(self, chain: str, rule_number: int | None) -> int:
        return self._index[(chain, rule_number)]

    @property
    def _index(self) -> dict[tuple[str, int | None], int]:
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {(s.chain, s.rule_number): i for i, s in enumerate(self.slots)}
            object.__setattr__(self, "_idx", idx)
        return idx


def plan_table(table: Table, family: Family, min_run: int = MIN_RUN) -> TablePlan:
    """Counter slots: every rule of every chain in table order, then each built-in
    chain's policy right after its rules."""
    slots: list[CounterSlot] = []
    for chain in table.chains:
        slots.extend(CounterSlot(chain.name, i) for i in range(1, len(chain.rules) + 1))
        if chain.builtin:
            slots.append(CounterSlot(chain.name, None))
    return TablePlan(table, tuple(slots), min_run)


def reachable_rules(table: Table, roots: tuple[str, ...], family: Family = Family.IPV4
                    ) -> Iterator[tuple[str, int, Rule]]:
    """(chain, rule number, rule) of every rule reachable from `roots`; raises
    UnsupportedRule on loops or jumps to missing chains (iptables refuses both)."""
    seen: set[str] = set()

    def walk(name: str, stack: tuple[str, ...]) -> Iterator[tuple[str, int, Rule]]:
        chain = table.chain(name)
        if chain is None:
            raise UnsupportedRule(f"jump to unknown chain {name!r} (from {stack[-1]})")
        first = name not in seen
        seen.add(name)
        for i, rule in enumerate(chain.rules, 1):
            if first:
                yield name, i, rule
            t = rule.target
            if t is not None and is_jump(t, family):
                if t.name in stack or t.name == name:
                    raise UnsupportedRule(f"chain loop {' -> '.join((*stack, name, t.name))}")
                yield from walk(t.name, (*stack, name))

    for root in roots:
        if table.chain(root) is not None:
            yield from walk(root, ())


def check_and_needs(table: Table, family: Family, roots: tuple[str, ...],
                    flavor: str | None = None,
                    handoff: Mapping[tuple[str, int], int] | None = None) -> Needs:
    """Raise UnsupportedRule for the first uncompilable reachable rule; else what
    the program's rules read. `handoff` rules (backend/handoff.py) only have their
    first matches compiled."""
    l4 = 0
    in_name = out_name = False
    for chain, num, rule in reachable_rules(table, roots, family):
        if handoff and (chain, num) in handoff:
            rule = replace(rule, matches=rule.matches[:handoff[(chain, num)]], target=None)
        why = unsupported_reason(rule, family, flavor)
        if why:
            where = f" ({rule.location})" if rule.location else ""
            raise UnsupportedRule(f"{table.name}/{chain} rule {num}{where}: {why}")
        for m in rule.matches:
            mc = matcher(m.module)
            assert mc is not None
            l4 = max(l4, mc.l4_bytes(m))
        in_name |= uses_in_iface(rule)
        out_name |= uses_out_iface(rule)
    return Needs(l4_bytes=l4, in_name=in_name, out_name=out_name)
