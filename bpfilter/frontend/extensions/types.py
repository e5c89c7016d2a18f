"""Typed option values and the small parse helpers libxtables gives every extension.

Extensions store meaning, not text: a port range is ``PortRange(lo, hi)``, a
value/mask pair ``ValueMask(value, mask)``. The helpers reproduce libxtables'
number, port and string parsing (``xtables_strtoui``, ``xtables_parse_port``,
``xtopt_parse_mint``, ``XTTYPE_STRING``, iproute2 name tables) and the C library
conversions extensions call (``strtoul``, ``strtod``), so every extension
accepts and refuses exactly what iptables 1.8.9 does.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import ExtensionError
from bpfilter.frontend.lexer import save_string  # noqa: F401  (xtables_save_string, re-exported)
from bpfilter.ir import Option

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


def save_ports(opt: Option, flag: str) -> str | None:
    """tcp/udp save: nothing for the full range (even negated), else [! ]--flag lo[:hi]."""
    pr: PortRange = opt.value
    if pr.lo == 0 and pr.hi == 0xFFFF:
        return None
    return f"{'! ' if opt.negated else ''}--{flag} {format_port_range(pr)}"


# --- xtables option types (XTTYPE_UINT*, XTTYPE_UINT*RC, XTTYPE_PORTRC, XTTYPE_STRING) ---


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


def port_or_service(name: str) -> int | None:
    """A port as libxt_TPROXY reads it: decimal (16-bit truncated) or a service name.

    Unlike ``getportbyname`` no '+' sign, and /etc/services through getservbyname.
    """
    digits = name.lstrip(" \t\n\v\f\r")
    if digits.isdigit() and digits.isascii():
        return int(digits) & 0xFFFF
    return service_to_port(name, None) if name else None


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


def quoted(value: str) -> str:
    """What ``printf(" \\"%s\\"", value)`` prints: always quoted, nothing escaped."""
    return f'"{value}"'


def put_string(text: str, size: int) -> str:
    """xtables' XTTYPE_STRING with XTOPT_PUT: silently cut to ``size - 1`` bytes."""
    raw = text.encode("utf-8", "surrogateescape")
    return raw[: size - 1].decode("utf-8", "surrogateescape")


# --- C library conversions -------------------------------------------------------

ULONG_MAX = 0xFFFFFFFFFFFFFFFF
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


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


_FLOAT_RE = re.compile(
    r"[ \t\n\v\f\r]*[+-]?("
    r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)",
    re.IGNORECASE,
)


def strtod(text: str) -> tuple[float, str] | None:
    """C strtod: (value, rest) or None when no number starts the string."""
    m = _FLOAT_RE.match(text)
    if m is None:
        return None
    num = m.group(0).strip()
    body = num.lstrip("+-")
    sign = -1.0 if num.startswith("-") else 1.0
    low = body.lower()
    if low.startswith("0x"):
        mant, _, exp = low[2:].partition("p")
        whole, _, frac = mant.partition(".")
        value = float(int(whole or "0", 16))
        if frac:
            value += int(frac, 16) / (16 ** len(frac))
        value *= 2.0 ** int(exp or "0")
    elif low.startswith("inf"):
        value = float("inf")
    elif low.startswith("nan"):
        value = float("nan")
    else:
        value = float(body)
    return sign * value, text[m.end() :]


def c_unsigned(value: float, bits: int = 32) -> int:
    """C conversion of a double to an unsigned int (truncation, x86-64 wrap)."""
    if value != value or value in (float("inf"), float("-inf")):
        return 0
    v = int(value)
    if not -(2**63) <= v < 2**64:
        return 0
    return v & ((1 << bits) - 1)


# --- iproute2 name tables (rt_realms, group) ---------------------------------------


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
