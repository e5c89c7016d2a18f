"""glibc ``getopt_long`` as iptables drives it, over a long-option table that grows.

iptables parses a rule with ``getopt_long(argc, argv, "-:A:C:D:...", opts)``
and appends an extension's options to ``opts`` when ``-m``/``-j``/``-p``
loads it, so later words see more options. Behaviour kept from glibc:
RETURN_IN_ORDER (non-options come back as code 1), ``:`` for a missing
argument, ``?`` for unknown/ambiguous options, ``--name=value``, unique-prefix
abbreviations (exact match first; prefixes that name different options are
ambiguous), clustered short options and attached short arguments, ``--`` ends
options.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

NON_OPTION = 1
MISSING = ":"
UNKNOWN = "?"

NO_ARGUMENT, REQUIRED_ARGUMENT, OPTIONAL_ARGUMENT = 0, 1, 2


class LongOpt(NamedTuple):
    """One entry of getopt_long's ``struct option`` table."""

    name: str
    has_arg: int
    val: Hashable


class LongTable(tuple):
    """A long-option table with its exact-name index (first entry of a name wins)."""

    exact: dict[str, LongOpt]

    @classmethod
    def build(cls, opts: Sequence[LongOpt], base: LongTable | None = None) -> LongTable:
        """``base`` entries first (their index is reused), then ``opts``."""
        table = cls((*(base or ()), *opts))
        exact = dict(base.exact) if base is not None else {}
        for lo in opts:
            exact.setdefault(lo.name, lo)
        table.exact = exact
        return table


def parse_optstring(optstring: str) -> dict[str, int]:
    """Short options of a getopt string (leading '-' / ':' flags dropped)."""
    s = optstring.lstrip("-+").lstrip(":")
    out: dict[str, int] = {}
    i = 0
    while i < len(s):
        c = s[i]
        n = 0
        while i + 1 + n < len(s) and s[i + 1 + n] == ":" and n < 2:
            n += 1
        out[c] = n
        i += 1 + n
    return out


class GetOpt:
    """Stateful scanner: call ``next(longopts)`` until it returns None."""

    def __init__(self, argv: Sequence[str], shorts: dict[str, int]):
        self.argv = list(argv)
        self.shorts = shorts
        self.optind = 0
        self.optarg: str | None = None
        self._cluster = ""  # rest of a short-option cluster being scanned
        self._table: Sequence[LongOpt] | None = None
        self._exact: dict[str, LongOpt] = {}

    def next(self, longopts: Sequence[LongOpt]) -> Hashable | None:
        """The next option code (short char, long ``val``, 1, ':' or '?'), None at the end."""
        self.optarg = None
        argv = self.argv
        if not self._cluster:
            if self.optind >= len(argv):
                return None
            word = argv[self.optind]
            if len(word) == 2 and word[0] == "-" and word[1] != "-":
                # Fast path for the common lone "-x" (same result as the cluster walk).
                c = word[1]
                has = self.shorts.get(c)
                if has is not None and c != ":":
                    self.optind += 1
                    if has != REQUIRED_ARGUMENT:
                        return c
                    if self.optind < len(argv):
                        self.optarg = argv[self.optind]
                        self.optind += 1
                        return c
                    return MISSING
            if word == "--":
                self.optind += 1
                return None
            if not word.startswith("-") or word == "-":
                self.optind += 1
                self.optarg = word
                return NON_OPTION
            if word.startswith("--"):
                return self._long(word[2:], longopts)
            self._cluster = word[1:]
            self.optind += 1
        c, self._cluster = self._cluster[0], self._cluster[1:]
        has = self.shorts.get(c)
        if has is None or c == ":":
            self._cluster = ""
            return UNKNOWN
        if has == NO_ARGUMENT:
            return c
        if self._cluster:
            self.optarg, self._cluster = self._cluster, ""
            return c
        if has == OPTIONAL_ARGUMENT:
            return c
        if self.optind < len(argv):
            self.optarg = argv[self.optind]
            self.optind += 1
            return c
        return MISSING

    def _long(self, body: str, longopts: Sequence[LongOpt]) -> Hashable:
        name, eq, value = body.partition("=")
        if isinstance(longopts, LongTable):
            found = longopts.exact.get(name)
        else:
            if self._table is not longopts:
                self._table = longopts
                self._exact = {}
                for lo in longopts:
                    self._exact.setdefault(lo.name, lo)
            found = self._exact.get(name)
        if found is None:
            for lo in longopts:
                if lo.name.startswith(name):
                    if found is None:
                        found = lo
                    elif found.has_arg != lo.has_arg or found.val != lo.val:
                        self.optind += 1
                        return UNKNOWN  # ambiguous
        self.optind += 1
        if found is None:
            return UNKNOWN
        if eq:
            if found.has_arg == NO_ARGUMENT:
                return UNKNOWN
            self.optarg = value
        elif found.has_arg == REQUIRED_ARGUMENT:
            if self.optind < len(self.argv):
                self.optarg = self.argv[self.optind]
                self.optind += 1
            else:
                return MISSING
        return found.val
