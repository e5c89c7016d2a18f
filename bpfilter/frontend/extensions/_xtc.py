"""Shared helpers for the group-C match extensions (IPsec, IPv6 headers, meta matches).

They reproduce the libxtables 1.8.9 behaviours these extensions rely on that
``types.py`` does not cover: the ``XTTYPE_UINT*RC`` range parser (which, in
1.8.9, accepts ``max < min``), the ``XTTYPE_PORTRC`` port parser, iptables-save
string quoting, and the kernel's ``xt_check_match`` protocol / hook / table
checks (the kernel refuses those rules, so we must too).

The module name starts with ``_`` so the extension loader skips it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bpfilter.frontend.extensions.base import ExtensionError, ParseContext
from bpfilter.frontend.extensions.types import UINT16_MAX, NumRange, service_to_port, strtoul
from bpfilter.ir import BUILTIN_CHAINS, Family, Option

# Netfilter hooks named like the built-in chains (the kernel checks hooks, not chain names).
PREROUTING = "PREROUTING"
INPUT = "INPUT"
FORWARD = "FORWARD"
OUTPUT = "OUTPUT"
POSTROUTING = "POSTROUTING"


def parse_uint(text: str, lmax: int, ext: str, opt: str, lo: int = 0) -> int:
    """xtables_strtoui on the whole string with iptables' "bad value" message."""
    res = strtoul(text)
    if res is None or res[1] != "" or res[0] > lmax or res[0] < lo:
        raise ExtensionError(
            f'{ext}: bad value for option "--{opt}", or out of range ({lo}-{lmax}).'
        )
    return res[0]


def parse_mint(text: str, lmax: int, ext: str, opt: str, maxiter: int = 2) -> list[int]:
    """libxtables' xtopt_parse_mint: ``a``, ``a:b``, ``:b``, ``a:``, ``:`` (1.8.9).

    Returns the 1 or 2 components given; empty components default to 0 (first)
    or ``lmax`` (second). Like 1.8.9 it does not refuse ``a > b``.
    """
    vals: list[int] = []
    rest = text
    while True:
        if len(vals) == maxiter:
            raise ExtensionError(
                f'{ext}: Too many components for option "--{opt}" (max: {maxiter})'
            )
        if rest == "" or rest[0] == ":":
            value = lmax if len(vals) == 1 else 0
            tail = rest
        else:
            res = strtoul(rest)
            if res is None or res[0] > lmax:
                raise ExtensionError(
                    f'{ext}: bad value for option "--{opt}" near "{rest}", '
                    f"or out of range (0-{lmax})."
                )
            value, tail = res
            if tail != "" and tail[0] != ":":
                raise ExtensionError(
                    f'{ext}: Argument to "--{opt}" has unexpected characters near "{tail}".'
                )
        vals.append(value)
        if tail == "":
            return vals
        rest = tail[1:]


def parse_range_rc(text: str, lmax: int, ext: str, opt: str) -> NumRange:
    """An ``XTTYPE_UINT*RC`` option as the extensions use it: one value means lo == hi."""
    vals = parse_mint(text, lmax, ext, opt)
    return NumRange(vals[0], vals[-1])


def getportbyname(name: str) -> int | None:
    """xtables_getportbyname: decimal (truncated to 16 bits, as getaddrinfo does) or a service."""
    if name.isdigit():
        return int(name) & UINT16_MAX
    for proto in ("tcp", "udp", "sctp", "dccp"):
        p = service_to_port(name, proto)
        if p is not None:
            return p
    return None


def parse_mport(text: str, ext: str, opt: str) -> NumRange:
    """libxtables' xtopt_parse_mport (``XTTYPE_PORTRC``) as 1.8.9 has it."""
    vals: list[int] = []
    parts = text.split(":")
    if len(parts) > 2:
        raise ExtensionError(f'{ext}: Too many components for option "--{opt}" (max: 2)')
    for part in parts:
        if part == "":
            vals.append(UINT16_MAX if len(vals) == 1 else 0)
            continue
        p = getportbyname(part)
        if p is None:
            raise ExtensionError(f'Port "{part}" does not resolve to anything.')
        vals.append(p)
    return NumRange(vals[0], vals[-1])


def format_range(r: NumRange) -> str:
    """``lo`` when lo == hi, else ``lo:hi`` (the usual save format)."""
    return str(r.lo) if r.lo == r.hi else f"{r.lo}:{r.hi}"


_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def save_string(value: str) -> str:
    """xtables_save_string: bare when only safe characters, else quoted with escapes."""
    if value and all(c in _NO_QUOTE for c in value):
        return value
    out = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f'"{out}"'


def quoted(value: str) -> str:
    """What ``printf(" \\"%s\\"", value)`` prints: always quoted, nothing escaped."""
    return f'"{value}"'


def require_protocol(ctx: ParseContext, proto: int, ext: str) -> None:
    """The kernel's xt_check_match: a match bound to a protocol needs ``-p`` of it, not negated."""
    p = ctx.protocol
    if p is None or p.value != proto or p.negated:
        fam = "ip6" if ctx.family is Family.IPV6 else "ip"
        raise ExtensionError(f"{fam}_tables: {ext} match: only valid for protocol {proto}")


def require_hooks(ctx: ParseContext, hooks: Iterable[str], ext: str) -> None:
    """The kernel's hook check, for rules in built-in chains.

    Rules in user chains are checked by the kernel against every hook that
    reaches the chain; that needs the whole table (a later validation pass,
    which can use the extension's ``valid_hooks``).
    """
    allowed = frozenset(hooks)
    builtin = BUILTIN_CHAINS.get(ctx.table, ())
    if ctx.chain in builtin and ctx.chain not in allowed:
        fam = "ip6" if ctx.family is Family.IPV6 else "ip"
        only = "/".join(h for h in BUILTIN_CHAINS["mangle"] if h in allowed)
        raise ExtensionError(
            f"{fam}_tables: {ext} match: used from hooks {ctx.chain}, but only valid from {only}"
        )


def require_table(ctx: ParseContext, tables: Iterable[str], ext: str) -> None:
    """The kernel's table check (``xt_match.table``)."""
    allowed = tuple(tables)
    if ctx.table not in allowed:
        fam = "ip6" if ctx.family is Family.IPV6 else "ip"
        raise ExtensionError(
            f"{fam}_tables: {ext} match: only valid in {'/'.join(allowed)} table, "
            f"not {ctx.table}"
        )


def by_name(options: Sequence[Option]) -> dict[str, Option]:
    """Options keyed by name (the last one wins, like repeated xtables options)."""
    return {o.name: o for o in options}


def must_have(found: dict[str, Option], name: str, ext: str) -> Option:
    """xtables' XTOPT_MAND: the option must be there."""
    opt = found.get(name)
    if opt is None:
        raise ExtensionError(f'{ext}: option "--{name}" must be specified')
    return opt
