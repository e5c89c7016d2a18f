"""Typed option values and the small parse helpers libxtables gives every extension.

Extensions store meaning, not text: a port range is ``PortRange(lo, hi)``, a
value/mask pair ``ValueMask(value, mask)``. The helpers reproduce libxtables'
number and port parsing (``xtables_strtoui``, ``xtables_parse_port``) so every
extension accepts and refuses exactly what iptables 1.8.9 does.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.lexer import save_string  # noqa: F401  (xtables_save_string, re-exported)

UINT8_MAX = 0xFF
UINT16_MAX = 0xFFFF
UINT32_MAX = 0xFFFFFFFF
UINT64_MAX = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class PortRange:
    """Inclusive port range; a single port has lo == hi."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return format_port_range(self)

    @property
    def is_any(self) -> bool:
        return self.lo == 0 and self.hi == UINT16_MAX


@dataclass(frozen=True)
class NumRange:
    """Inclusive range of integers (lengths, TTLs, marks...)."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"


@dataclass(frozen=True)
class ValueMask:
    """A value compared under a mask, as ``--mark 0x1/0xff``."""

    value: int
    mask: int

    def format(self, full_mask: int = UINT32_MAX) -> str:
        """iptables' usual ``0xV`` or ``0xV/0xM`` (mask omitted when all ones)."""
        if self.mask == full_mask:
            return f"0x{self.value:x}"
        return f"0x{self.value:x}/0x{self.mask:x}"

    def __str__(self) -> str:
        return self.format()


def strtoul(s: str, base: int = 0) -> tuple[int, str] | None:
    """C ``strtoumax`` as libxtables uses it: (value, rest) or None when no digits.

    Leading white space and a '+' are skipped; a '-' is refused (xtables checks
    for it explicitly). Base 0 means decimal, ``0x`` hex or leading-0 octal.
    """
    i = 0
    n = len(s)
    while i < n and s[i] in " \t\n\v\f\r":
        i += 1
    if i < n and s[i] == "-":
        return None
    if i < n and s[i] == "+":
        i += 1
    b = base
    if (b in (0, 16)) and s[i : i + 2].lower() == "0x" and i + 2 < n and _digit(s[i + 2], 16):
        b = 16
        i += 2
    elif b == 0:
        b = 8 if s[i : i + 1] == "0" else 10
    start = i
    val = 0
    while i < n and _digit(s[i], b):
        val = val * b + int(s[i], 36)
        i += 1
    if i == start:
        return None
    return val, s[i:]


def _digit(c: str, base: int) -> bool:
    try:
        return int(c, 36) < base if c.isascii() and c.isalnum() else False
    except ValueError:
        return False


def strtoui_prefix(s: str, lo: int = 0, hi: int = UINT32_MAX, base: int = 0) -> tuple[int, str]:
    """xtables_strtoui with an ``end`` pointer: number then the unparsed rest.

    Raises ValueError when there is no number or it is out of [lo, hi].
    """
    res = strtoul(s, base)
    if res is None:
        raise ValueError(s)
    v, rest = res
    if v > UINT64_MAX or v < lo or (hi != 0 and v > hi):
        raise ValueError(s)
    return v, rest


def try_number(s: str, lo: int = 0, hi: int = UINT32_MAX, base: int = 0) -> int | None:
    """xtables_strtoui without ``end``: the whole string must be the number."""
    if base in (0, 10) and s.isascii() and s.isdigit() and (s[0] != "0" or len(s) == 1):
        v = int(s)  # fast path: plain decimal
        return v if lo <= v and (hi == 0 or v <= hi) else None
    try:
        v, rest = strtoui_prefix(s, lo, hi, base)
    except ValueError:
        return None
    return v if rest == "" else None


def parse_number(s: str, lo: int = 0, hi: int = UINT32_MAX, what: str = "value") -> int:
    """A whole-string unsigned number in [lo, hi] (decimal, 0x hex, 0 octal)."""
    v = try_number(s, lo, hi)
    if v is None:
        raise ExtensionError(f'Invalid {what} "{s}" specified')
    return v


def service_to_port(name: str, proto: str | None) -> int | None:
    """getservbyname(3) on /etc/services; None when unknown."""
    try:
        return socket.getservbyname(name, proto) if proto else socket.getservbyname(name)
    except (OSError, TypeError):
        return None


def parse_port(name: str, proto: str | None = None) -> int:
    """xtables_parse_port: a number 0-65535 or a service name from /etc/services."""
    v = try_number(name, 0, UINT16_MAX)
    if v is not None:
        return v
    if name:
        p = service_to_port(name, proto)
        if p is not None:
            return p
    raise ExtensionError(f"invalid port/service `{name}' specified")


def parse_port_range(text: str, proto: str | None = None) -> PortRange:
    """``a``, ``a:b``, ``:b`` (0:b), ``a:`` (a:65535) as libxt_tcp's parse_tcp_ports.

    Refuses lo > hi with iptables' message.
    """
    if ":" not in text:
        p = parse_port(text, proto)
        return PortRange(p, p)
    a, b = text.split(":", 1)
    lo = parse_port(a, proto) if a else 0
    hi = parse_port(b, proto) if b else UINT16_MAX
    if lo > hi:
        raise ExtensionError("invalid portrange (min > max)")
    return PortRange(lo, hi)


def format_port_range(pr: PortRange) -> str:
    """Numeric ``lo`` or ``lo:hi`` as iptables-save prints ports."""
    return str(pr.lo) if pr.lo == pr.hi else f"{pr.lo}:{pr.hi}"


def parse_value_mask(text: str, full_mask: int = UINT32_MAX, what: str = "value") -> ValueMask:
    """``value[/mask]`` with xtables_strtoui numbers (as xtables' XTTYPE_MARKMASK32)."""
    value_s, sep, mask_s = text.partition("/")
    try:
        value, rest = strtoui_prefix(value_s, 0, full_mask)
    except ValueError:
        raise ExtensionError(f'Invalid {what} "{text}" specified') from None
    if rest:
        raise ExtensionError(f'Invalid {what} "{text}" specified')
    mask = full_mask
    if sep:
        m = try_number(mask_s, 0, full_mask)
        if m is None:
            raise ExtensionError(f'Invalid {what} "{text}" specified')
        mask = m
    return ValueMask(value, mask)


def parse_num_range(text: str, lo: int = 0, hi: int = UINT32_MAX, what: str = "range") -> NumRange:
    """``a``, ``a:b``, ``a:`` and ``:b`` in [lo, hi] (xtables' XTTYPE_UINT*RC style)."""
    if ":" not in text:
        v = parse_number(text, lo, hi, what)
        return NumRange(v, v)
    a, b = text.split(":", 1)
    x = parse_number(a, lo, hi, what) if a else lo
    y = parse_number(b, lo, hi, what) if b else hi
    if x > y:
        raise ExtensionError(f"invalid {what} (min > max)")
    return NumRange(x, y)
