"""iptables-restore input → IR, with iptables-legacy-restore 1.8.9's rules.

Line level (iptables-restore.c): ``*table`` opens a table (replaced entirely
unless ``noflush``), ``:CHAIN POLICY [p:b]`` declares a chain, ``COMMIT``
(exactly, followed by a newline) closes the table, ``#`` lines and empty
lines are skipped, everything else in a table is an iptables command
(``[p:b]`` prefix allowed). Command level (xshared.c do_parse + iptables.c
do_command4): see ``commands.py``. At ``COMMIT`` the checks the kernel makes
when the table is replaced (jump loops, extension table/hook limits) run.

Differences from the real tool, on purpose:
- host names are not resolved (see ``netparse``);
- kernel-side refusals (e.g. ``-m tcp`` without ``-p tcp``) are reported on
  the rule's own line instead of the COMMIT line when the extension can tell
  at parse time;
- ``-L``/``-S``/``-V``/``-h`` inside the input print nothing.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field

from bpfilter.frontend.commands import Command, parse_command
from bpfilter.frontend.errors import RestoreError
from bpfilter.frontend.extensions.base import ExtensionError, match_extension, target_extension
from bpfilter.frontend.lexer import split_line
from bpfilter.ir import (
    BUILTIN_CHAINS,
    STANDARD_VERDICTS,
    Chain,
    Counters,
    Family,
    Location,
    Rule,
    Ruleset,
    Table,
    Target,
)

XT_EXTENSION_MAXNAMELEN = 29
# sscanf("[%llu:%llu]"): blanks before numbers allowed, anything after ']' ignored.
_COUNTERS = re.compile(r"\[\s*\+?(\d+):\s*\+?(\d+)\]")


@dataclass
class _Chain:
    name: str
    policy: str | None
    counters: Counters = Counters()
    rules: list[Rule] = field(default_factory=list)
    location: Location | None = None


@dataclass
class _Table:
    """A table being edited: chains by name, insertion order irrelevant (printer sorts)."""

    name: str
    chains: dict[str, _Chain]

    @classmethod
    def empty(cls, name: str) -> _Table:
        return cls(name, {c: _Chain(c, "ACCEPT") for c in BUILTIN_CHAINS[name]})

    @classmethod
    def of(cls, t: Table) -> _Table:
        return cls(t.name, {c.name: _Chain(c.name, c.policy, c.counters, list(c.rules),
                                           c.location) for c in t.chains})

    def freeze(self) -> Table:
        return Table(self.name, tuple(Chain(c.name, c.policy, c.counters, tuple(c.rules),
                                            c.location) for c in self.chains.values()))

    def builtin(self, chain: str) -> bool:
        c = self.chains.get(chain)
        return c is not None and c.policy is not None


class _Fail(Exception):
    """A command the table refuses (iptables prints "line N failed")."""


def parse_restore(
    text: str,
    *,
    family: Family,
    filename: str = "<stdin>",
    noflush: bool = False,
    base: Ruleset | None = None,
    table_filter: str | None = None,
    counters: bool = False,
) -> Ruleset:
    """Parse iptables-restore input; return the resulting ruleset or raise RestoreError.

    ``base`` is the current state (tables not named in the input stay as
    they are; with ``noflush`` named tables are edited instead of replaced).
    ``counters`` is iptables-restore's ``-c``: keep ``[p:b]`` counters.
    On error, ``RestoreError.committed`` holds the ruleset as of the last
    successful COMMIT (iptables-restore leaves those tables applied).
    """
    # Parsing builds millions of small immutable objects and frees none: the cyclic
    # GC's full collections would only rescan them (and made 100k rules 2x slower).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Restore(family, filename, noflush, base, table_filter, counters).run(text)
    finally:
        if enabled:
            gc.enable()


class _Restore:
    def __init__(self, family: Family, filename: str, noflush: bool, base: Ruleset | None,
                 table_filter: str | None, counters: bool):
        self.family = family
        self.filename = filename
        self.noflush = noflush
        self.table_filter = table_filter
        self.counters = counters
        self.tables: dict[str, Table] = {t.name: t for t in base.tables} if base else {}

    def err(self, lineno: int, line: str, msg: str, kind: str = "param") -> RestoreError:
        return RestoreError(msg, file=self.filename, line=lineno, text=line, kind=kind)

    def run(self, text: str) -> Ruleset:
        try:
            return self._run(text)
        except RestoreError as e:
            e.committed = Ruleset(self.family, tuple(self.tables.values()))
            raise

    def _run(self, text: str) -> Ruleset:
        cur: _Table | None = None
        skipping = False
        lineno = 0
        lines = text.split("\n")
        last_complete = text.endswith("\n")
        for idx, raw in enumerate(lines):
            if idx == len(lines) - 1 and raw == "":
                break
            lineno += 1
            nl = idx < len(lines) - 1 or last_complete
            if raw == "" and nl:
                continue
            if raw.startswith("#"):
                continue
            if cur is not None and raw == "COMMIT" and nl:
                self.commit(cur, lineno, raw)
                cur = None
                continue
            if cur is None and raw.startswith("*"):
                words = raw[1:].split()
                if not words:
                    raise self.err(lineno, raw, f"line {lineno} table name invalid")
                name = words[0]
                if self.table_filter is not None and name != self.table_filter:
                    skipping = True
                    continue
                skipping = False
                cur = self.open_table(name, lineno, raw)
                continue
            if cur is None:
                if skipping:
                    continue
                raise self.err(lineno, raw, "line not inside a table (*table ... COMMIT)",
                               "failed")
            if raw.startswith(":"):
                self.chain_line(cur, raw, lineno)
            else:
                self.command_line(cur, raw, lineno)
        if cur is not None:
            raise self.err(lineno + 1, "", f"COMMIT expected at line {lineno + 1}", "commit")
        return Ruleset(self.family, tuple(self.tables.values()))

    def open_table(self, name: str, lineno: int, raw: str) -> _Table:
        if name not in BUILTIN_CHAINS:
            raise self.err(lineno, raw, f"unable to initialize table '{name}'")
        old = self.tables.get(name)
        if old is None:
            return _Table.empty(name)
        t = _Table.of(old)
        if not self.noflush:
            for c in list(t.chains.values()):
                if c.policy is None:
                    del t.chains[c.name]
                else:
                    c.rules.clear()
        return t

    def chain_line(self, t: _Table, raw: str, lineno: int) -> None:
        words = raw[1:].split()
        if not words:
            raise self.err(lineno, raw, f"line {lineno} chain name invalid")
        name = words[0]
        if len(name.encode()) >= XT_EXTENSION_MAXNAMELEN:
            raise self.err(lineno, raw, f"Invalid chain name `{name}' "
                                        f"({XT_EXTENSION_MAXNAMELEN - 1} chars max)")
        loc = Location(self.filename, lineno)
        if not t.builtin(name):
            if self.noflush and name in t.chains:
                t.chains[name].rules.clear()
            elif name in t.chains or name in STANDARD_VERDICTS:
                raise self.err(lineno, raw, f"error creating chain '{name}':File exists")
            else:
                t.chains[name] = _Chain(name, None, location=loc)
        if len(words) < 2:
            raise self.err(lineno, raw, f"line {lineno} policy invalid")
        policy = words[1]
        if policy == "-":
            return
        ctrs = Counters()
        if self.counters:
            m = _COUNTERS.match(words[2]) if len(words) > 2 else None
            if m is None:
                raise self.err(lineno, raw, f"invalid policy counters for chain '{name}'")
            ctrs = Counters(int(m.group(1)), int(m.group(2)))
        why = None
        if not t.builtin(name):
            why = "Bad built-in chain name"
        elif policy not in ("ACCEPT", "DROP"):
            why = "Bad policy name"
        if why:
            raise self.err(lineno, raw, f"Can't set policy `{policy}' on `{name}' "
                                        f"line {lineno}: {why}")
        c = t.chains[name]
        c.policy = policy
        c.counters = ctrs  # set_policy always gets counters: zeros without -c
        c.location = loc

    def command_line(self, t: _Table, raw: str, lineno: int) -> None:
        rest = raw
        pc: tuple[str, str] | None = None
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise self.err(lineno, raw, f"Bad line {lineno}: need ]")
            inner = raw[1:end]
            p, colon, b = inner.partition(":")
            if not p.strip(":") or not colon or not b:
                raise self.err(lineno, raw, f"Bad line {lineno}: need :" if not colon
                               else f"Bad line {lineno}: need ]")
            pc = (p, b)
            rest = raw[end + 1:]
        argv = split_line(rest)
        if self.counters and pc is not None:
            argv = ["--set-counters", pc[0], pc[1], *argv]
        loc = Location(self.filename, lineno)
        try:
            cmd = parse_command(argv, self.family, t.name, lambda c: c in t.chains, loc)
        except ExtensionError as e:
            raise self.err(lineno, raw, str(e)) from None
        if cmd is None:
            return
        try:
            self.apply(t, cmd)
        except _Fail as e:
            raise self.err(lineno, raw, str(e) or "refused", "failed") from None

    # --- commands against the table (libiptc's checks) --------------------------

    def _chain(self, t: _Table, name: str) -> _Chain:
        c = t.chains.get(name)
        if c is None:
            raise _Fail(f"No chain/target/match by that name: {name}")
        return c

    def _check_target(self, t: _Table, rules: list[Rule]) -> None:
        for r in rules:
            tg = r.target
            if tg is not None and tg.name in t.chains and t.builtin(tg.name) and (
                tg.goto or target_extension(tg.name, self.family) is None
            ):
                raise _Fail(f"can't jump to built-in chain {tg.name}")

    def apply(self, t: _Table, cmd: Command) -> None:
        op = cmd.op
        if op in ("A", "I", "R", "D", "C"):
            chain = self._chain(t, cmd.chain)
            rules = cmd.rules
            if op == "A":
                self._check_target(t, rules)
                chain.rules.extend(rules)
            elif op == "I":
                self._check_target(t, rules)
                n = cmd.rulenum - 1
                if n > len(chain.rules):
                    raise _Fail("Index of insertion too big")
                for r in rules:
                    chain.rules.insert(n, r)
            elif op == "R":
                self._check_target(t, rules)
                if cmd.rulenum > len(chain.rules):
                    raise _Fail("Index of replacement too big")
                chain.rules[cmd.rulenum - 1] = rules[0]
            elif cmd.rulenum:
                if cmd.rulenum > len(chain.rules):
                    raise _Fail("Index of deletion too big")
                del chain.rules[cmd.rulenum - 1]
            else:
                for r in rules:
                    key = _rule_key(r)
                    for i, old in enumerate(chain.rules):
                        if _rule_key(old) == key:
                            if op == "D":
                                del chain.rules[i]
                            break
                    else:
                        raise _Fail("Bad rule (does a matching rule exist in that chain?)")
        elif op == "N":
            if cmd.chain in t.chains:
                raise _Fail("Chain already exists")
            t.chains[cmd.chain] = _Chain(cmd.chain, None, location=cmd.location)
        elif op == "X":
            names = [cmd.chain] if cmd.chain else [c.name for c in t.chains.values()
                                                   if c.policy is None]
            for name in names:
                c = self._chain(t, name)
                if c.policy is not None:
                    raise _Fail(f"Can't delete built-in chain {name}")
                if _references(t, name):
                    raise _Fail(f"Too many links: chain {name} is referenced")
                if c.rules:
                    raise _Fail(f"Directory not empty: chain {name} has rules")
                del t.chains[name]
        elif op == "F":
            for c in [self._chain(t, cmd.chain)] if cmd.chain else list(t.chains.values()):
                c.rules.clear()
        elif op == "Z":
            if cmd.rulenum and cmd.rulenum > len(self._chain(t, cmd.chain or "").rules):
                raise _Fail("Index of counter too big")
            for c in [self._chain(t, cmd.chain)] if cmd.chain else list(t.chains.values()):
                c.counters = Counters()
                c.rules[:] = [r.with_(counters=Counters()) if r.counters else r
                              for r in c.rules]
        elif op == "P":
            c = self._chain(t, cmd.chain)
            if c.policy is None:
                raise _Fail("Bad built-in chain name")
            if cmd.policy not in ("ACCEPT", "DROP"):
                raise _Fail("Bad policy name")
            c.policy = cmd.policy
        elif op == "E":
            c = self._chain(t, cmd.chain)
            if c.policy is not None:
                raise _Fail("Can't rename built-in chain")
            new = cmd.newname
            if new in t.chains or new in STANDARD_VERDICTS:
                raise _Fail("File exists")
            if len(new.encode()) >= XT_EXTENSION_MAXNAMELEN:
                raise _Fail("Invalid argument")
            t.chains = {(new if k == cmd.chain else k): v for k, v in t.chains.items()}
            c.name = new
            for ch in t.chains.values():
                ch.rules[:] = [
                    r.with_(target=Target(new, r.target.options, r.target.goto))
                    if r.target is not None and r.target.name == cmd.chain else r
                    for r in ch.rules
                ]
        elif op in ("L", "S"):
            if cmd.chain:
                self._chain(t, cmd.chain)

    # --- COMMIT: what the kernel checks when the table is replaced ---------------

    def commit(self, t: _Table, lineno: int, raw: str) -> None:
        try:
            hooks = reachable_hooks(t.freeze())
        except ValueError as e:
            raise self.err(lineno, raw, str(e), "failed") from None
        for c in t.chains.values():
            reach = hooks.get(c.name, frozenset())
            for r in c.rules:
                try:
                    self.check_rule(t.name, r, reach)
                except ExtensionError as e:
                    where = f" (rule from {r.location})" if r.location else ""
                    raise self.err(lineno, raw, f"{e}{where}", "failed") from None
        self.tables[t.name] = t.freeze()

    def check_rule(self, table: str, r: Rule, reach: frozenset[str]) -> None:
        """The kernel's checkentry for each match and target, with the reaching hooks."""
        for m in r.matches:
            ext = match_extension(m.module, self.family)
            if ext is not None:
                ext.check_hooks(table, reach, self.family)
                ext.check_rule_hooks(m.options, table, reach, self.family)
        tg = r.target
        if tg is not None:
            ext = target_extension(tg.name, self.family)
            if ext is not None and ext.name != "standard":
                ext.check_hooks(table, reach, self.family)
                ext.check_rule_hooks(tg.options, table, reach, self.family)


def _rule_key(r: Rule) -> Rule:
    """What libiptc compares for -D/-C: the entry without counters; '-p all' and an
    address with an empty mask are the same bytes as leaving them out."""
    changes: dict[str, object] = {"counters": None}
    if r.protocol is not None and r.protocol.value == 0 and not r.protocol.negated:
        changes["protocol"] = None
    for f in ("src", "dst"):
        v = getattr(r, f)
        if v is not None and not v.negated and int(v.value.mask) == 0:
            changes[f] = None
    return r.with_(**changes)


def is_chain_jump(target: Target | None, family: Family | None = None) -> bool:
    """Whether a rule's target is a jump/goto to a chain (not a verdict or extension)."""
    if target is None or target.name in STANDARD_VERDICTS:
        return False
    return target.goto or target_extension(target.name, family) is None


def _references(t: _Table, name: str) -> bool:
    return any(r.target is not None and r.target.name == name and is_chain_jump(r.target)
               for c in t.chains.values() for r in c.rules)


def reachable_hooks(table: Table) -> dict[str, frozenset[str]]:
    """For each chain, the built-in chains whose walk reaches it.

    Raises ValueError on a jump loop reachable from a built-in chain (the
    kernel refuses the table with ELOOP); unreachable loops are allowed.
    """
    names = {c.name for c in table.chains}
    edges: dict[str, list[str]] = {}
    for c in table.chains:
        edges[c.name] = [
            r.target.name for r in c.rules
            if r.target is not None and r.target.name in names and is_chain_jump(r.target)
        ]
    out: dict[str, set[str]] = {n: set() for n in names}
    for c in table.chains:
        if c.policy is None:
            continue
        state: dict[str, int] = {}  # 1 on stack, 2 done
        stack: list[tuple[str, int]] = [(c.name, 0)]
        state[c.name] = 1
        out[c.name].add(c.name)
        while stack:
            node, i = stack[-1]
            succ = edges[node]
            if i >= len(succ):
                stack.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            nxt = succ[i]
            st = state.get(nxt)
            if st == 1:
                raise ValueError(f"Too many levels of symbolic links: loop through chain {nxt}")
            if st is None:
                state[nxt] = 1
                out[nxt].add(c.name)
                stack.append((nxt, 0))
    return {k: frozenset(v) for k, v in out.items()}


__all__ = ["parse_restore", "reachable_hooks", "is_chain_jump"]
