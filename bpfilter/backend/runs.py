"""Runs of rules that differ only in one exact value → one binary search.

Why: blocklists and port allowlists are long runs like `-s A/32 -j DROP`, `-s B/32 -j DROP`
or `-p tcp --dport P -j ACCEPT`. A linear walk costs one compare per rule; a binary
search over the sorted values costs log2(n) compares and gives the same answer:
within such a run the first rule that matches is the first whose value equals the
packet's (the rest of each rule is identical and evaluated once, before the search,
in the kernel's order — including the hotdrop checks of tcp/udp), and every rule
of the run ends the walk (ACCEPT or DROP), so later duplicates never matter.

This is a plan-level rewrite: the emitter only sees `ExactRun` steps. A later pass
can put the values in a hash map instead of code with no change to the matchers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bpfilter.ir import Chain, Match, Rule

MIN_RUN = 8  # shorter runs stay linear (a search tree only pays off with a few levels)
FIELDS = ("src", "dst", "dport", "sport")
TERMINAL = ("ACCEPT", "DROP")
HOST32 = int(ipaddress.IPv4Address("255.255.255.255"))


@dataclass(frozen=True)
class ExactRun:
    """Rules `first`..`first + length - 1` of a chain, equal but for `field`.

    `template` is the first rule without that field (what is checked before the
    search); `leaves` are (value, rule number) sorted by value, first occurrence only.
    """

    field: str
    first: int
    length: int
    template: Rule
    leaves: tuple[tuple[int, int], ...]


Step = int | ExactRun  # a rule number (1-based) or a run


def split(rule: Rule, field: str) -> tuple[Rule, int] | None:
    """(rule without `field`, its exact value) when the rule can be part of a run."""
    t = rule.target
    if t is None or t.name not in TERMINAL or t.goto or t.options:
        return None
    base = rule.with_(counters=None, location=None)
    if field in ("src", "dst"):
        v = getattr(rule, field)
        if v is None or v.negated or int(v.value.mask) != HOST32:
            return None
        return base.with_(**{field: None}), int(v.value.addr)
    hits = [(i, m) for i, m in enumerate(rule.matches) if m.module in ("tcp", "udp")]
    if len(hits) != 1:
        return None
    i, m = hits[0]
    o = m.get(field)
    if o is None or o.negated or o.value.lo != o.value.hi:
        return None
    rest = Match(m.module, tuple(x for x in m.options if x is not o))
    return base.with_(matches=(*rule.matches[:i], rest, *rule.matches[i + 1:])), o.value.lo


def plan_steps(chain: Chain, min_run: int = MIN_RUN) -> list[Step]:
    """The chain as steps: single rules, and runs of at least `min_run` rules."""
    rules = chain.rules
    steps: list[Step] = []
    i = 0
    while i < len(rules):
        best: ExactRun | None = None
        for field in FIELDS:
            run = _run_from(rules, i, field)
            if run is not None and run.length >= min_run and (
                    best is None or run.length > best.length):
                best = run
        if best is None:
            steps.append(i + 1)
            i += 1
        else:
            steps.append(best)
            i += best.length
    return steps


def _run_from(rules: tuple[Rule, ...], start: int, field: str) -> ExactRun | None:
    head = split(rules[start], field)
    if head is None:
        return None
    template = head[0]
    first_of: dict[int, int] = {}
    n = 0
    for rule in rules[start:]:
        s = split(rule, field)
        if s is None or s[0] != template:
            break
        first_of.setdefault(s[1], start + n + 1)
        n += 1
    leaves = tuple(sorted(first_of.items()))
    return ExactRun(field, start + 1, n, template, leaves)
