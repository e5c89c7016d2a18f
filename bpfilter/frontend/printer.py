"""IR → the text iptables-legacy-save 1.8.9 prints (without its # comment lines).

Order and spelling follow iptables-save: built-in chains in kernel hook order
then user chains sorted by name (libiptc keeps them sorted), every chain's
``:NAME POLICY [p:b]`` line first, rules chain by chain, fields in
print_rule4/6 order (-s -d -i -o -p -f, each match as ``-m NAME`` + its save
text, then -j/-g), ``/32`` or ``/128`` always shown, masks as prefix lengths
when contiguous.
"""

from __future__ import annotations

from bpfilter.frontend.extensions.base import ParseContext, match_extension, target_extension
from bpfilter.frontend.netparse import (
    address_printed,
    format_address,
    format_interface,
    format_protocol,
)
from bpfilter.ir import BUILTIN_CHAINS, Chain, Family, Rule, Ruleset, Table


def chain_order(table: Table) -> list[Chain]:
    """Built-in chains in hook order, then user chains sorted bytewise (strcmp)."""
    builtin = BUILTIN_CHAINS.get(table.name, ())
    by_name = {c.name: c for c in table.chains}
    out = [by_name[n] for n in builtin if n in by_name]
    out += sorted((c for c in table.chains if c.name not in builtin),
                  key=lambda c: c.name.encode())
    return out


def print_table(table: Table, family: Family, *, counters: bool = False) -> str:
    chains = chain_order(table)
    lines = [f"*{table.name}"]
    for c in chains:
        lines.append(f":{c.name} {c.policy or '-'} [{c.counters.packets}:{c.counters.bytes}]")
    for c in chains:
        for r in c.rules:
            line = print_rule(r, c.name, family, table=table.name)
            if counters:
                rc = r.counters
                line = f"[{rc.packets if rc else 0}:{rc.bytes if rc else 0}] {line}"
            lines.append(line)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def print_ruleset(rs: Ruleset, *, counters: bool = False) -> str:
    """The whole ruleset, tables in the ruleset's order."""
    return "".join(print_table(t, rs.family, counters=counters) for t in rs.tables)


def print_rule(rule: Rule, chain: str, family: Family, *, table: str = "filter") -> str:
    """One ``-A CHAIN ...`` line exactly as iptables-save prints it."""
    parts = [f"-A {chain}"]
    for flag, neg in (("-s", rule.src), ("-d", rule.dst)):
        if neg is not None and address_printed(neg.value, neg.negated, family):
            parts.append(f"{'! ' if neg.negated else ''}{flag} {format_address(neg.value, family)}")
    for flag, neg in (("-i", rule.in_iface), ("-o", rule.out_iface)):
        if neg is not None:
            name = format_interface(neg.value)
            if name is not None:
                parts.append(f"{'! ' if neg.negated else ''}{flag} {name}")
    if rule.protocol is not None and rule.protocol.value:
        parts.append(f"{'! ' if rule.protocol.negated else ''}-p "
                     f"{format_protocol(rule.protocol.value)}")
    if rule.fragment is not None:
        parts.append("-f" if rule.fragment else "! -f")
    ctx = ParseContext(family, table, chain, rule.protocol)
    for m in rule.matches:
        ext = match_extension(m.module, family)
        text = ext.save(m.options, ctx) if ext is not None else ""
        parts.append(f"-m {m.module}" + (f" {text}" if text else ""))
    t = rule.target
    if t is not None:
        ext = target_extension(t.name, family) if not t.goto else None
        if ext is not None and ext.name != "standard":
            text = ext.save(t.options, ctx)
            parts.append(f"-j {t.name}" + (f" {text}" if text else ""))
        else:
            parts.append(f"{'-g' if t.goto else '-j'} {t.name}")
    return " ".join(parts)
