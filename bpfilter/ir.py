"""The semantic IR every stage shares: Ruleset → Table → Chain → Rule.

The IR is immutable and comparable so passes can be written as pure functions
(ruleset in, ruleset out) and tests can compare whole rulesets.  Source
locations are carried for error messages but excluded from equality, so the
same rule read from two files compares equal.

Values inside match/target options are typed by the extension that parsed them
(see ``bpfilter.frontend.extensions``); the IR itself only fixes the shape.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Family(IntEnum):
    """Address family of a rule space; values are the kernel's NFPROTO_* numbers."""

    IPV4 = 2
    IPV6 = 10

    @property
    def bits(self) -> int:
        return 32 if self is Family.IPV4 else 128


# Built-in chains of each table, in the order iptables-save prints them.
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# Verdicts that end (or return from) a chain walk without naming a chain.
STANDARD_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})


@dataclass(frozen=True)
class Location:
    """Where a line came from, for error messages and `bpfilter plan`."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Counters:
    packets: int = 0
    bytes: int = 0

    def __str__(self) -> str:
        return f"[{self.packets}:{self.bytes}]"


@dataclass(frozen=True)
class Address:
    """An address with a mask, as iptables keeps it (masks need not be contiguous).

    ``addr`` is already masked (iptables stores ``addr & mask``).
    """

    addr: IPAddress
    mask: IPAddress

    @property
    def prefixlen(self) -> int | None:
        """Prefix length when the mask is contiguous, else None."""
        bits = self.addr.max_prefixlen
        m = int(self.mask)
        ones = bin(m).count("1")
        return ones if m == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None

    def contains(self, ip: IPAddress) -> bool:
        return (int(ip) & int(self.mask)) == int(self.addr)

    def __str__(self) -> str:
        plen = self.prefixlen
        return f"{self.addr}/{plen if plen is not None else self.mask}"


@dataclass(frozen=True)
class Negatable:
    """A value with an optional `!` in front, as iptables' generic options have."""

    value: Any
    negated: bool = False


@dataclass(frozen=True)
class Option:
    """One option of a match or target: canonical long name, typed value, negation.

    ``value`` is whatever the owning extension parsed it to (int, tuple of port
    ranges, frozenset of states, str, ...). Flags without argument use ``True``.
    """

    name: str
    value: Any = True
    negated: bool = False


@dataclass(frozen=True)
class Match:
    """A `-m module` (or implicit protocol) match with its options in canonical order."""

    module: str
    options: tuple[Option, ...] = ()

    def get(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass(frozen=True)
class Target:
    """What a rule does: a standard verdict, an extension target, or a chain.

    ``goto`` is True for `-g CHAIN`. A rule without target (counting only) has
    ``Rule.target is None``.
    """

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False

    def get(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass(frozen=True)
class Rule:
    """One rule. Generic fields mirror struct ipt_ip; the rest is matches."""

    src: Negatable | None = None  # Negatable[Address]
    dst: Negatable | None = None  # Negatable[Address]
    in_iface: Negatable | None = None  # Negatable[str], may end in '+'
    out_iface: Negatable | None = None
    protocol: Negatable | None = None  # Negatable[int]: IP protocol number, 0 = all
    fragment: bool | None = None  # True: -f, False: ! -f (IPv4 only)
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    counters: Counters | None = None
    location: Location | None = field(default=None, compare=False)

    def with_(self, **changes: Any) -> Rule:
        return replace(self, **changes)


@dataclass(frozen=True)
class Chain:
    """A chain; built-in chains have a policy (ACCEPT/DROP), user chains None."""

    name: str
    policy: str | None = None
    counters: Counters = Counters()
    rules: tuple[Rule, ...] = ()
    location: Location | None = field(default=None, compare=False)

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(frozen=True)
class Table:
    """A table as committed: chains in definition order (the printer sorts)."""

    name: str
    chains: tuple[Chain, ...] = ()

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True)
class Ruleset:
    """All tables of one address family, in the order they were committed."""

    family: Family = Family.IPV4
    tables: tuple[Table, ...] = ()

    def table(self, name: str) -> Table | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None
