"""Seeded random stateless filter rulesets (IPv4, or IPv6 with ``family=6``), as restore text.

The rulesets exercise what the differential test must prove equal: user
chains reached by ``-j`` and ``-g``, RETURN, policies, negations, prefixes
(including non-contiguous masks), ``-i``/``-o`` with ``+`` wildcards, ports
and port ranges, multiport, ICMP types/codes, TCP flags, ``-f``, length and
iprange.  Each rule is also kept as a `GenRule`, so `packetgen` can aim
packets at it (its edges and its negations).

Addresses follow the router lab's plan (`bpfilter.verify.router`): sources
from SOURCE_NET, destinations local (INPUT) or forwarded (FORWARD), so that
rules actually meet the packets they are about.  Same seed, same text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bpfilter.verify.packets import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_FLAGS,
)
from bpfilter.verify.router import AddressPlan, plan_for

T = TypeVar("T")
Range = tuple[int, int]

PROTO_NAMES = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmp", 47: "gre",
               132: "sctp", 50: "esp", IPPROTO_ICMPV6: "ipv6-icmp"}
INTERESTING_PORTS = (0, 1, 22, 53, 80, 443, 1023, 1024, 3306, 8080, 32768, 65534, 65535)
ICMP_ANY = 255  # --icmp-type any: every type and code
ICMP_TYPES = ((ICMP_ANY, None), (0, 0), (3, 0), (3, 1), (3, 3), (3, 4), (3, 13), (4, 0),
              (5, 1), (8, 0), (11, 0), (11, 1), (12, 0), (13, 0), (14, 0))
ICMP6_TYPES = ((1, 0), (1, 3), (1, 4), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1), (128, 0),
               (129, 0))
IFACE_PATTERNS_IN = ("in0", "in1", "in+", "i+", "out+", "eth0", "+")
IFACE_PATTERNS_OUT = ("out0", "out1", "out+", "o+", "in0", "in+", "eth1", "+")
BUILTINS = ("INPUT", "FORWARD")


@dataclass(frozen=True)
class Neg(Generic[T]):
    """A condition value and whether it is negated with ``!``."""

    value: T
    negated: bool = False

    def bang(self) -> str:
        return "! " if self.negated else ""


@dataclass(frozen=True)
class GenRule:
    """One generated rule: its conditions (None = not used) and its target."""

    chain: str
    src: Neg[tuple[int, int]] | None = None  # (address, mask) as ints
    dst: Neg[tuple[int, int]] | None = None
    in_iface: Neg[str] | None = None
    out_iface: Neg[str] | None = None
    proto: Neg[int] | None = None
    fragment: bool | None = None  # True: -f, False: ! -f
    sport: Neg[Range] | None = None
    dport: Neg[Range] | None = None
    multiport: tuple[str, tuple[Range, ...], bool] | None = None  # (option, ranges, negated)
    icmp: Neg[tuple[int, int | None]] | None = None
    tcp_flags: Neg[tuple[int, int]] | None = None  # (mask, comparison)
    length: Neg[Range] | None = None
    src_range: Neg[Range] | None = None
    dst_range: Neg[Range] | None = None
    target: str | None = None
    goto: bool = False
    syn_alias: bool = False  # print tcp_flags (FIN,SYN,RST,ACK / SYN) as --syn
    comment: str | None = None
    family: int = 4

    def line(self) -> str:
        """The ``-A`` line as iptables-restore reads it."""
        out = [f"-A {self.chain}"]
        if self.src:
            out.append(f"{self.src.bang()}-s {_addr_text(*self.src.value, self.family)}")
        if self.dst:
            out.append(f"{self.dst.bang()}-d {_addr_text(*self.dst.value, self.family)}")
        if self.in_iface:
            out.append(f"{self.in_iface.bang()}-i {self.in_iface.value}")
        if self.out_iface:
            out.append(f"{self.out_iface.bang()}-o {self.out_iface.value}")
        if self.proto:
            name = PROTO_NAMES.get(self.proto.value, self.proto.value)
            out.append(f"{self.proto.bang()}-p {name}")
        if self.fragment is not None:
            out.append("-f" if self.fragment else "! -f")
        proto = self.proto.value if self.proto and not self.proto.negated else None
        if proto in (IPPROTO_TCP, IPPROTO_UDP) and (self.sport or self.dport or self.tcp_flags):
            out.append(f"-m {PROTO_NAMES[proto]}")
            if self.sport:
                out.append(f"{self.sport.bang()}--sport {_range_text(self.sport.value)}")
            if self.dport:
                out.append(f"{self.dport.bang()}--dport {_range_text(self.dport.value)}")
            if self.tcp_flags and self.syn_alias:
                out.append(f"{self.tcp_flags.bang()}--syn")
            elif self.tcp_flags:
                mask, comp = self.tcp_flags.value
                out.append(f"{self.tcp_flags.bang()}--tcp-flags {_flags_text(mask)} "
                           f"{_flags_text(comp)}")
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and self.icmp:
            itype, code = self.icmp.value
            text = "any" if itype == ICMP_ANY else str(itype) if code is None else f"{itype}/{code}"
            if proto == IPPROTO_ICMP:
                out.append(f"-m icmp {self.icmp.bang()}--icmp-type {text}")
            else:
                out.append(f"-m icmp6 {self.icmp.bang()}--icmpv6-type {text}")
        if self.multiport:
            option, ranges, negated = self.multiport
            listed = ",".join(_range_text(r) for r in ranges)
            out.append(f"-m multiport {'! ' if negated else ''}--{option} {listed}")
        if self.length:
            out.append(f"-m length {self.length.bang()}--length "
                       f"{_range_text(self.length.value)}")
        if self.src_range or self.dst_range:
            out.append("-m iprange")
            if self.src_range:
                out.append(f"{self.src_range.bang()}--src-range "
                           f"{_iprange_text(self.src_range.value, self.family)}")
            if self.dst_range:
                out.append(f"{self.dst_range.bang()}--dst-range "
                           f"{_iprange_text(self.dst_range.value, self.family)}")
        if self.comment:
            out.append(f'-m comment --comment "{self.comment}"')
        if self.target:
            out.append(f"{'-g' if self.goto else '-j'} {self.target}")
        return " ".join(out)


@dataclass
class GenRuleset:
    """A generated filter table: policies, user chains, rules in order, and the seed."""

    seed: int
    policies: dict[str, str]
    user_chains: list[str]
    rules: list[GenRule]
    anchors: dict[str, list[int]] = field(default_factory=dict)
    family: int = 4

    def text(self) -> str:
        lines = ["*filter"]
        for chain in ("INPUT", "FORWARD", "OUTPUT"):
            lines.append(f":{chain} {self.policies.get(chain, 'ACCEPT')} [0:0]")
        lines += [f":{chain} - [0:0]" for chain in self.user_chains]
        lines += [rule.line() for rule in self.rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def rules_of(self, chain: str) -> list[GenRule]:
        return [r for r in self.rules if r.chain == chain]

    def reachable_from(self) -> dict[str, set[str]]:
        """For every chain, the built-in chains (INPUT/FORWARD) whose walk can reach it."""
        reach: dict[str, set[str]] = {c: set() for c in (*BUILTINS, *self.user_chains)}
        for builtin in BUILTINS:
            todo, seen = [builtin], set()
            while todo:
                chain = todo.pop()
                if chain in seen:
                    continue
                seen.add(chain)
                reach[chain].add(builtin)
                todo += [r.target for r in self.rules_of(chain) if r.target in reach]
        return reach


def _addr_text(addr: int, mask: int, family: int = 4) -> str:
    plan = plan_for(family)
    ones = bin(mask).count("1")
    if mask == prefix_mask(ones, plan.bits):
        return f"{plan.text(addr)}/{ones}"
    return f"{plan.text(addr)}/{plan.text(mask)}"


def _range_text(r: Range) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}:{r[1]}"


def _iprange_text(r: Range, family: int = 4) -> str:
    plan = plan_for(family)
    return f"{plan.text(r[0])}-{plan.text(r[1])}"


def _flags_text(bits: int) -> str:
    """iptables 1.8.9 knows FIN..URG only (no ECE/CWR), so rules use the low six bits."""
    names = [name for name, bit in TCP_FLAGS.items() if bits & bit & 0x3F]
    return ",".join(names) if names else "NONE"


def prefix_mask(length: int, bits: int = 32) -> int:
    full = (1 << bits) - 1
    return (full << (bits - length)) & full if length else 0


class RulesetGenerator:
    """Makes `GenRuleset`s from a seed; see the module docstring for what they cover."""

    def __init__(self, seed: int, *, min_rules: int = 6, max_rules: int = 40,
                 family: int = 4) -> None:
        self.seed = seed
        self.family = family
        self.plan: AddressPlan = plan_for(family)
        self.rng = random.Random(seed)
        self.min_rules = min_rules
        self.max_rules = max_rules

    # anchors: a few addresses/ports per ruleset, so rules overlap and packets hit them
    def anchors(self) -> dict[str, list[int]]:
        rng, plan = self.rng, self.plan

        def pick(kind: str, check: bool) -> int:
            while True:
                value = rng.randint(*plan.anchors[kind])
                if not check or plan.usable_destination(value):
                    return value

        return {
            "src": [pick("src", False) for _ in range(4)],
            "local": [pick("local", False) for _ in range(3)],
            "fwd0": [pick("fwd0", True) for _ in range(2)],
            "fwd1": [pick("fwd1", True) for _ in range(2)],
            "port": list(INTERESTING_PORTS) + [rng.randint(1, 65535) for _ in range(4)],
        }

    def _prefix(self, anchor: int) -> tuple[int, int]:
        rng = self.rng
        roll = rng.random()
        if self.family == 6:
            # the plan's networks are /16s: shorter prefixes match everything, keep them rare
            length = rng.choice((0, 16)) if roll < 0.06 else rng.choice(
                (24, 32, 33, 48, 56, 64, 96, 112, 120, 124, 127, 128, 128))
            mask = prefix_mask(length, 128)
        elif roll < 0.06:  # non-contiguous mask, kept as iptables keeps it
            mask = rng.getrandbits(32) | 0xFF000000
        elif roll < 0.12:
            mask = prefix_mask(rng.choice((0, 1, 2, 4)))
        else:
            mask = prefix_mask(rng.choice((8, 12, 16, 20, 23, 24, 25, 28, 30, 31, 32, 32)))
        return anchor & mask, mask

    def _range_end(self, base: int) -> int:
        """Upper bound for an iprange starting at ``base``: stay in its part of the plan."""
        if self.family == 4:
            return 0xDFFFFFFF if base >= 0x80000000 else 0x7EFFFFFF
        for lo, hi in self.plan.anchors.values():
            if lo <= base <= hi:
                return hi
        return base

    def _port_range(self, ports: list[int]) -> Range:
        rng = self.rng
        a = rng.choice(ports)
        if rng.random() < 0.5:
            return a, a
        b = min(65535, a + rng.choice((1, 2, 10, 100, 1000, 30000)))
        return a, b

    def _dst_anchor(self, chain_paths: set[str], anchors: dict[str, list[int]]) -> int:
        keys = []
        if "INPUT" in chain_paths:
            keys.append("local")
        if "FORWARD" in chain_paths:
            keys += ["fwd0", "fwd1"]
        return self.rng.choice(anchors[self.rng.choice(keys or ["local"])])

    def _rule(self, chain: str, paths: set[str], targets: list[str],
              anchors: dict[str, list[int]]) -> GenRule:
        rng = self.rng
        neg = lambda: rng.random() < 0.12  # noqa: E731 - tiny local helper
        kw: dict[str, object] = {}
        if rng.random() < 0.4:
            kw["src"] = Neg(self._prefix(rng.choice(anchors["src"])), neg())
        if rng.random() < 0.4:
            kw["dst"] = Neg(self._prefix(self._dst_anchor(paths, anchors)), neg())
        if chain != "INPUT" and rng.random() < 0.15:
            kw["out_iface"] = Neg(rng.choice(IFACE_PATTERNS_OUT), neg())
        if rng.random() < 0.08:
            kw["in_iface"] = Neg(rng.choice(IFACE_PATTERNS_IN), neg())
        roll = rng.random()
        proto = None
        if roll < 0.35:
            proto = IPPROTO_TCP
        elif roll < 0.6:
            proto = IPPROTO_UDP
        elif roll < 0.75:
            proto = IPPROTO_ICMP if self.family == 4 else IPPROTO_ICMPV6
        elif roll < 0.79:
            proto = 47
        if proto is not None:
            negated = proto not in (IPPROTO_ICMP, IPPROTO_ICMPV6) and rng.random() < 0.08
            kw["proto"] = Neg(proto, negated)
            if not negated and proto in (IPPROTO_TCP, IPPROTO_UDP):
                if rng.random() < 0.4:
                    kw["dport"] = Neg(self._port_range(anchors["port"]), neg())
                if rng.random() < 0.25:
                    kw["sport"] = Neg(self._port_range(anchors["port"]), neg())
                if proto == IPPROTO_TCP and rng.random() < 0.06:
                    kw["tcp_flags"] = Neg((0x17, 0x02), neg())  # --syn
                    kw["syn_alias"] = True
                elif proto == IPPROTO_TCP and rng.random() < 0.2:
                    mask = rng.choice((0x12, 0x17, 0x3F, 0x02, 0x04, 0x29))
                    kw["tcp_flags"] = Neg((mask, mask & rng.choice((0x02, 0x12, 0x10, 0x01, 0))),
                                          neg())
                if rng.random() < 0.2:
                    ranges = tuple(self._port_range(anchors["port"])
                                   for _ in range(rng.randint(1, 5)))
                    kw["multiport"] = (rng.choice(("dports", "sports", "ports")), ranges,
                                       rng.random() < 0.2)
            if not negated and proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and rng.random() < 0.6:
                itype, code = rng.choice(ICMP_TYPES if self.family == 4 else ICMP6_TYPES)
                kw["icmp"] = Neg((itype, code if rng.random() < 0.5 else None), neg())
        if rng.random() < 0.06:
            # -f with an L4 match can never match (no L4 header in a non-first fragment):
            # mostly avoid wasting rules on that, but keep a few.
            has_l4 = any(k in kw for k in ("sport", "dport", "tcp_flags", "multiport", "icmp"))
            fragment = rng.random() < (0.15 if has_l4 else 0.7)
            if self.family == 4:  # ip6tables has no -f (fragments are -m frag there)
                kw["fragment"] = fragment
        if rng.random() < 0.1:
            lo = rng.choice((20, 28, 40, 48, 60, 64, 100, 200, 576))
            kw["length"] = Neg((lo, lo + rng.choice((0, 8, 50, 500, 1400))), neg())
        if rng.random() < 0.08:
            base = rng.choice(anchors["src"])
            kw["src_range"] = Neg((base, min(base + rng.choice((0, 1, 7, 300, 70000)),
                                              self._range_end(base))), neg())
        if rng.random() < 0.06:
            base = self._dst_anchor(paths, anchors)
            kw["dst_range"] = Neg((base, min(base + rng.choice((0, 1, 7, 300)),
                                             self._range_end(base))), neg())
        if rng.random() < 0.04:
            kw["comment"] = rng.choice(("allow ssh", "fail2ban #3", "x", "k8s: svc/a-b"))
        if not kw and rng.random() < 0.9:
            # an unconditional rule shadows everything after it: keep them rare
            kw["dst"] = Neg(self._prefix(self._dst_anchor(paths, anchors)))
        roll = rng.random()
        if roll < 0.06:
            target = None  # no target: counts and continues
        elif targets and roll < 0.3:
            target = rng.choice(targets)
            kw["goto"] = rng.random() < 0.3
        elif roll < 0.4 and chain not in BUILTINS:
            target = "RETURN"
        elif roll < 0.45:
            target = "RETURN"  # in a built-in chain RETURN means "apply the policy"
        else:
            target = rng.choice(("ACCEPT", "DROP"))
        return GenRule(chain, target=target, family=self.family, **kw)  # type: ignore[arg-type]

    def generate(self) -> GenRuleset:
        rng = self.rng
        anchors = self.anchors()
        users = [f"U{i}" for i in range(rng.choice((0, 1, 2, 3, 4)))]
        policies = {c: rng.choice(("ACCEPT", "DROP")) for c in BUILTINS}
        n_rules = rng.randint(self.min_rules, self.max_rules)
        # chains[i] may jump only to later user chains: no loops, as iptables requires
        chains = [*BUILTINS, *users]
        per_chain = {c: [] for c in chains}
        for _ in range(n_rules):
            per_chain[rng.choice(chains)].append(None)
        ruleset = GenRuleset(self.seed, policies, users, [], anchors, self.family)
        # reachability needs the jumps, so build chain by chain in order
        paths: dict[str, set[str]] = {c: ({c} if c in BUILTINS else set()) for c in chains}
        for chain in chains:
            targets = users if chain in BUILTINS else users[users.index(chain) + 1 :]
            for _ in per_chain[chain]:
                rule = self._rule(chain, paths[chain] or set(BUILTINS), targets, anchors)
                ruleset.rules.append(rule)
                if rule.target in paths:
                    paths[rule.target] |= paths[chain] or set(BUILTINS)
        return ruleset


def generate_ruleset(seed: int, **kwargs: int) -> GenRuleset:
    return RulesetGenerator(seed, **kwargs).generate()

