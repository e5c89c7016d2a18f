"""Shared helpers for the group-C match extensions (IPsec, IPv6 headers, meta matches).

They reproduce the libxtables 1.8.9 behaviours these extensions rely on that
``types.py`` does not cover: the ``XTTYPE_UINT*RC`` range parser (which, in
1.8.9, accepts ``max < min``), the ``XTTYPE_PORTRC`` port parser, iptables-save
string quoting, and the kernel's ``xt_check_match`` protocol / hook / table
checks (the kernel refuses those rules, so we must too).

The module name starts with ``_`` so the extension loader skips it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bpfilter.frontend.extensions.base import Extension, ExtensionError, ParseContext
from bpfilter.frontend.extensions.types import UINT16_MAX, NumRange, strtoul
from bpfilter.ir import BUILTIN_CHAINS, Family, IPAddress, Option

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
    """xtables_getportbyname: glibc getaddrinfo's service lookup, as iptables calls it.

    That is a decimal number (leading blanks and '+' allowed, truncated to
    16 bits) or a service name from /etc/services.
    """
    if not name:
        return None
    try:
        infos = socket.getaddrinfo(None, name)
    except (socket.gaierror, UnicodeError):
        return None
    for family, _, _, _, addr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return int(addr[1])
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


HOOK_ORDER = (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)


class KernelPlaced(Extension):
    """An extension the kernel restricts to some hooks and/or tables.

    ``valid_hooks``: built-in chains (netfilter hooks) it may be reached from;
    ``valid_tables``: tables it may be used in (None: no restriction).
    ``finalize`` implementations call ``check_placement``; the parser calls
    ``check_hooks`` at COMMIT for rules in user chains.
    """

    valid_hooks: ClassVar[frozenset[str] | None] = None
    valid_tables: ClassVar[tuple[str, ...] | None] = None

    def check_hooks(self, table: str, hooks: Iterable[str], family: Family = Family.IPV4) -> None:
        if self.valid_tables is not None:
            require_table_named(table, family, self.valid_tables, self.name)
        if self.valid_hooks is not None:
            check_hook_set(hooks, self.valid_hooks, family, self.name)

    def check_placement(self, ctx: ParseContext) -> None:
        """Table always; hooks when the rule sits in a built-in chain."""
        if ctx.chain in BUILTIN_CHAINS.get(ctx.table, ()):
            self.check_hooks(ctx.table, (ctx.chain,), ctx.family)
        elif self.valid_tables is not None:
            require_table_named(ctx.table, ctx.family, self.valid_tables, self.name)


def check_hook_set(hooks: Iterable[str], valid: Iterable[str], family: Family, what: str) -> None:
    """Refuse when any of ``hooks`` is not in ``valid`` (kernel's xt_check_match wording)."""
    hs, ok = set(hooks), set(valid)
    bad = [h for h in HOOK_ORDER if h in hs and h not in ok]
    if bad:
        fam = "ip6" if family is Family.IPV6 else "ip"
        only = "/".join(h for h in HOOK_ORDER if h in ok)
        raise ExtensionError(
            f"{fam}_tables: {what} match: used from hooks {'/'.join(bad)}, "
            f"but only valid from {only}"
        )


def require_table_named(table: str, family: Family, tables: Iterable[str], what: str) -> None:
    allowed = tuple(tables)
    if table not in allowed:
        fam = "ip6" if family is Family.IPV6 else "ip"
        raise ExtensionError(
            f"{fam}_tables: {what} match: only valid in {'/'.join(allowed)} table, not {table}"
        )


def builtin_hooks(ctx: ParseContext) -> tuple[str, ...]:
    """The rule's own hook when it sits in a built-in chain, else () (unknown here)."""
    return (ctx.chain,) if ctx.chain in BUILTIN_CHAINS.get(ctx.table, ()) else ()


def read_lmap(path: str) -> dict[str, int]:
    """xtables_lmap_init: ``id name`` lines of an iproute2 table (empty when missing)."""
    out: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2:
                    res = strtoul(fields[0])
                    if res is not None and res[1] == "":
                        out.setdefault(fields[1], res[0])
    except OSError:
        pass
    return out


def lmap_name(path: str, value: int) -> str | None:
    """xtables_lmap_id2name: the first name for ``value``."""
    for name, v in read_lmap(path).items():
        if v == value:
            return name
    return None


def parse_val_mask_lmap(text: str, path: str, what: str) -> tuple[int, int]:
    """xtables_parse_val_mask with a name table: ``value[/mask]`` or a name (mask all ones)."""
    res = strtoul(text)
    if res is not None:
        value, rest = res
        mask = 0xFFFFFFFF
        if rest.startswith("/"):
            m = strtoul(rest[1:])
            if m is None or m[1] != "" or m[0] > 0xFFFFFFFF:
                raise ExtensionError(f"Bad {what} value \"{text}\"")
            mask = m[0]
            rest = ""
        if rest == "" and value <= 0xFFFFFFFF:
            return value, mask
    name = read_lmap(path).get(text)
    if name is None:
        raise ExtensionError(f"{what} '{text}' not found")
    return name, 0xFFFFFFFF


def format_val_mask_lmap(value: int, mask: int, path: str) -> str:
    """print_realm / print_devgroup: ``0xV/0xM``, or a name / ``0xV`` when the mask is full."""
    if mask != 0xFFFFFFFF:
        return f"0x{value:x}/0x{mask:x}"
    return lmap_name(path, value) or f"0x{value:x}"


@dataclass(frozen=True)
class HostMask:
    """xtables' XTTYPE_HOSTMASK: an address as given (not masked) and a prefix length.

    The kernel compares under the mask; the address is kept as written
    because iptables-save prints it that way.
    """

    addr: IPAddress
    prefixlen: int

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.addr}/{self.prefixlen}", strict=False)

    def __str__(self) -> str:
        full = self.addr.max_prefixlen
        return str(self.addr) if self.prefixlen == full else f"{self.addr}/{self.prefixlen}"


def parse_hostmask(text: str, family: Family, what: str) -> HostMask:
    """``addr[/plen|/mask]`` with a numeric address (host names are not resolved)."""
    addr_s, sep, mask_s = text.partition("/")
    cls = ipaddress.IPv6Address if family is Family.IPV6 else ipaddress.IPv4Address
    try:
        addr = cls(addr_s)
    except ValueError:
        raise ExtensionError(f"host/network `{addr_s}' not found") from None
    scope = getattr(addr, "scope_id", None)
    if scope:
        # getaddrinfo resolves the scope (an interface here) and drops it.
        if not scope.isdigit():
            try:
                socket.if_nametoindex(scope)
            except OSError:
                raise ExtensionError(f"host/network `{addr_s}' not found") from None
        addr = cls(addr_s.split("%", 1)[0])
    full = addr.max_prefixlen
    if not sep:
        return HostMask(addr, full)
    res = strtoul(mask_s)
    if res is not None and res[1] == "":
        if res[0] > full:
            raise ExtensionError(f'{what}: bad value for option, or out of range (0-{full}).')
        return HostMask(addr, res[0])
    try:
        mask = int(cls(mask_s))
    except ValueError:
        raise ExtensionError(f"{what}: invalid mask `{mask_s}' specified") from None
    ones = bin(mask).count("1")
    if mask != ((1 << full) - 1) ^ ((1 << (full - ones)) - 1):
        # xtables_ipmask_to_cidr gives -1 for a non-contiguous mask, which 1.8.9
        # turns into a full-length prefix.
        return HostMask(addr, full)
    return HostMask(addr, ones)


def put_string(text: str, size: int) -> str:
    """xtables' XTTYPE_STRING with XTOPT_PUT: silently cut to ``size - 1`` bytes."""
    raw = text.encode("utf-8", "surrogateescape")
    return raw[: size - 1].decode("utf-8", "surrogateescape")


ULONG_MAX = 0xFFFFFFFFFFFFFFFF


def c_strtoul(s: str, base: int = 0) -> tuple[int, str, bool] | None:
    """glibc strtoul(3): (value, rest, overflowed) or None when no digits were read.

    Unlike libxtables' wrappers it accepts a sign ("-1" wraps to ULONG_MAX)
    and saturates at ULONG_MAX on overflow, which some extensions rely on.
    """
    i, n = 0, len(s)
    while i < n and s[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    b = base
    if b in (0, 16) and s[i:i + 2].lower() == "0x" and i + 2 < n and s[i + 2] in _HEXDIGITS:
        b, i = 16, i + 2
    elif b == 0:
        b = 8 if s[i:i + 1] == "0" else 10
    start, val = i, 0
    while i < n and s[i].isascii() and s[i].isalnum() and int(s[i], 36) < b:
        val = val * b + int(s[i], 36)
        i += 1
    if i == start:
        return None
    if val > ULONG_MAX:
        return ULONG_MAX, s[i:], True
    return ((-val) & ULONG_MAX if neg else val), s[i:], False


_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
