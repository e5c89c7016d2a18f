"""Shared pieces of the group-B extensions (nat/mangle/raw targets and their matches).

Three things every group-B module needs and ``types.py`` does not give:

- ``PlacedExtension``: an ``Extension`` that knows where the kernel lets it run.
  ``valid_tables`` / ``valid_hooks`` / ``valid_protocols`` mirror the kernel's
  ``xt_target.table`` / ``.hooks`` / ``.proto`` (and a few checkentry tests);
  ``finalize`` refuses a rule in a built-in chain the kernel would refuse at
  COMMIT, and ``check_hooks(table, hooks)`` lets the parser re-check a rule in
  a user chain against every built-in chain that reaches it (the kernel's
  ``mark_source_chains`` + ``xt_check_target``). It also gives the xtables
  generic option checks (used once, not negatable, mandatory).
- ``inet_ntop``: glibc's text form of an address (``::1.2.3.4`` for IPv4-compatible
  IPv6, which Python's ``ipaddress`` prints differently).
- ``inet_pton`` and ``strtod``: the strict C parsers these extensions call.

The module name starts with ``_`` so the extension loader skips it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bpfilter.frontend.extensions.base import Extension, ExtensionError, OptionSpec, ParseContext
from bpfilter.frontend.extensions.types import service_to_port, try_number
from bpfilter.ir import BUILTIN_CHAINS, Family, IPAddress, Option

PREROUTING = "PREROUTING"
INPUT = "INPUT"
FORWARD = "FORWARD"
OUTPUT = "OUTPUT"
POSTROUTING = "POSTROUTING"
HOOK_ORDER = (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_SCTP = 132


@dataclass(frozen=True)
class OptionalArgSpec(OptionSpec):
    """An option whose argument is optional (libxt_rateest's ``--rateest-bps [rate]``).

    The parser passes the next word as the argument unless there is none or
    it starts with ``-`` or ``!`` (exactly libxt_rateest's test); ``parse``
    then gets an empty argument list.
    """

    optional_arg: bool = True


def family_prefix(family: Family) -> str:
    return "ip6" if family is Family.IPV6 else "ip"


class PlacedExtension(Extension):
    """An extension with the kernel's table / hook / protocol restrictions.

    ``valid_tables``: tables the kernel accepts it in (None: any).
    ``valid_hooks``: built-in chains (= netfilter hooks) it may be reached from (None: any).
    ``valid_protocols``: the rule's ``-p`` must be one of these, not negated (None: any).
    """

    valid_tables: ClassVar[frozenset[str] | None] = None
    valid_hooks: ClassVar[frozenset[str] | None] = None
    valid_protocols: ClassVar[frozenset[int] | None] = None

    # --- what the parser calls -------------------------------------------------

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        self.check_generic(options)
        found = {o.name: o for o in options}
        out = self.complete(found, ctx)
        self.check_placement(ctx)
        return out

    def check_hooks(self, table: str, hooks: Iterable[str], family: Family = Family.IPV4) -> None:
        """Refuse when a rule in ``table`` is reached from a hook it may not run in.

        ``hooks`` are the built-in chains the rule's chain is reachable from
        (for a built-in chain, just itself). Raises ExtensionError like the
        kernel's ``xt_check_target`` message.
        """
        self._check_table(table, family)
        if self.valid_hooks is None:
            return
        bad = [h for h in HOOK_ORDER if h in set(hooks) and h not in self.valid_hooks]
        if bad:
            only = "/".join(h for h in HOOK_ORDER if h in self.valid_hooks)
            raise ExtensionError(
                f"{family_prefix(family)}_tables: {self.name} {self.kind}: used from hooks "
                f"{'/'.join(bad)}, but only usable from {only}"
            )

    # --- for subclasses ----------------------------------------------------------

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        """Check the options as a whole and return them in canonical order."""
        return self.ordered(found.values())

    def ordered(self, options: Iterable[Option]) -> tuple[Option, ...]:
        order = {spec.name: i for i, spec in enumerate(self.options)}
        return tuple(sorted(options, key=lambda o: order.get(o.name, len(order))))

    def check_generic(self, options: Sequence[Option]) -> None:
        """xtables_option_parse: non-multi options once, '!' only where allowed."""
        seen: set[str] = set()
        for opt in options:
            spec = self.spec(opt.name)
            if spec is None:
                raise ExtensionError(f'{self.name}: unknown option "--{opt.name}"')
            if opt.name in seen and not spec.multi:
                raise ExtensionError(
                    f'{self.name}: option "--{opt.name}" can only be used once.'
                )
            if opt.negated and not spec.invert:
                raise ExtensionError(f'{self.name}: option "--{opt.name}" cannot be inverted.')
            seen.add(opt.name)

    def must(self, found: dict[str, Option], name: str) -> Option:
        """XTOPT_MAND."""
        opt = found.get(name)
        if opt is None:
            raise ExtensionError(f'{self.name}: option "--{name}" must be specified')
        return opt

    def exclusive(self, found: dict[str, Option], a: str, b: str) -> None:
        """An option's ``.excl``: both given is refused."""
        if a in found and b in found:
            raise ExtensionError(
                f'{self.name}: option "--{a}" cannot be used together with "--{b}".'
            )

    def check_placement(self, ctx: ParseContext) -> None:
        """Table and protocol always; hooks when the chain is built in."""
        self._check_table(ctx.table, ctx.family)
        if self.valid_protocols is not None:
            require_protocol(ctx, self.valid_protocols, f"{self.name} {self.kind}")
        if ctx.chain in BUILTIN_CHAINS.get(ctx.table, ()):
            self.check_hooks(ctx.table, (ctx.chain,), ctx.family)

    def _check_table(self, table: str, family: Family) -> None:
        if self.valid_tables is not None and table not in self.valid_tables:
            names = "/".join(sorted(self.valid_tables))
            raise ExtensionError(
                f"{family_prefix(family)}_tables: {self.name} {self.kind}: only valid in "
                f"{names} table, not {table}"
            )


def require_protocol(ctx: ParseContext, protocols: Iterable[int], what: str) -> None:
    """The rule's ``-p`` must be one of ``protocols`` and not negated (xt_check_target)."""
    allowed = sorted(set(protocols))
    p = ctx.protocol
    if p is None or p.negated or p.value not in allowed:
        only = "/".join(str(x) for x in allowed)
        raise ExtensionError(
            f"{family_prefix(ctx.family)}_tables: {what}: only valid for protocol {only}"
        )


def proto_number(ctx: ParseContext) -> int:
    """The rule's protocol number, ignoring '!' (what the entry's ip.proto holds)."""
    return 0 if ctx.protocol is None else int(ctx.protocol.value)


# --- addresses -----------------------------------------------------------------


def inet_pton(text: str, family: Family) -> IPAddress | None:
    """inet_pton(3): strict numeric address of the family, or None."""
    if not text or "%" in text or "/" in text or text != text.strip():
        return None
    try:
        if family is Family.IPV4:
            return ipaddress.IPv4Address(text)
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def inet_ntop(addr: IPAddress) -> str:
    """glibc inet_ntop: like ``ipaddress`` except IPv4-mapped/compatible IPv6 forms."""
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    words = [(int(addr) >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    # Longest run of zero words (at least 2), first one on ties: as glibc.
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base < 0:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
            if cur_len > best_len:
                best_base, best_len = cur_base, cur_len
        else:
            cur_base, cur_len = -1, 0
    if best_len < 2:
        best_base, best_len = -1, 0
    out = ""
    i = 0
    while i < 8:
        if best_base >= 0 and best_base <= i < best_base + best_len:
            if i == best_base:
                out += ":"
            i += 1
            continue
        if i:
            out += ":"
        if (
            i == 6
            and best_base == 0
            and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF))
        ):
            v4 = int(addr) & 0xFFFFFFFF
            out += str(ipaddress.IPv4Address(v4))
            break
        out += f"{words[i]:x}"
        i += 1
    if best_base >= 0 and best_base + best_len == 8:
        out += ":"
    return out


def mask_to_cidr(mask: IPAddress) -> int | None:
    """xtables_ip(6)mask_to_cidr: prefix length of a contiguous mask, else None."""
    bits = mask.max_prefixlen
    m = int(mask)
    ones = bin(m).count("1")
    return ones if m == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None


def prefix_mask(plen: int, family: Family) -> IPAddress:
    bits = family.bits
    m = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    return ipaddress.IPv4Address(m) if family is Family.IPV4 else ipaddress.IPv6Address(m)


def getportbyname(name: str) -> int | None:
    """xtables_getportbyname (XTTYPE_PORT): decimal (16-bit truncated) or a service name."""
    digits = name.lstrip(" \t\n\v\f\r")
    if digits.isdigit() and digits.isascii():
        return int(digits) & 0xFFFF
    return service_to_port(name, None) if name else None


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton(3) as getaddrinfo(AI_NUMERICHOST) uses it: ``a``, ``a.b``, ``a.b.c``, ``a.b.c.d``.

    Each part is decimal, 0-octal or 0x-hex; the last part fills the remaining bytes.
    """
    parts = text.split(".")
    if not text or len(parts) > 4:
        return None
    nums: list[int] = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            nums.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]*", part):
            nums.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            nums.append(int(part))
        else:
            return None
    value = 0
    for i, n in enumerate(nums[:-1]):
        if n > 0xFF:
            return None
        value |= n << (24 - 8 * i)
    last_bits = 32 - 8 * (len(nums) - 1)
    if nums[-1] >= 1 << last_bits:
        return None
    return ipaddress.IPv4Address(value | nums[-1])


def parse_host(text: str, family: Family) -> IPAddress | None:
    """XTTYPE_HOST without DNS: a numeric address as getaddrinfo(3) reads it."""
    if family is Family.IPV4:
        return inet_aton(text)
    return inet_pton(text, family)


def parse_hostmask(text: str, family: Family, ext: str, opt: str) -> tuple[IPAddress, IPAddress]:
    """XTTYPE_HOSTMASK as 1.8.9 has it: ``addr[/plen|/mask]`` → (address as given, mask).

    A prefix length is a C number (``0x18``, ``033``); a mask that is not
    contiguous becomes the full mask (1.8.9 quirk). Host names are not
    resolved (a firewall file must not depend on DNS).
    """
    host, sep, plen = text.partition("/")
    addr = parse_host(host, family)
    if addr is None:
        raise ExtensionError(f"getaddrinfo: Name or service not known ({host})")
    if not sep:
        return addr, prefix_mask(family.bits, family)
    n = try_number(plen, 0, family.bits)
    if n is not None:
        return addr, prefix_mask(n, family)
    mask = parse_host(plen, family)
    if mask is None:
        raise ExtensionError(
            f'{ext}: bad value for option "--{opt}", neither a valid network mask '
            f"nor valid CIDR (0-{family.bits})."
        )
    cidr = mask_to_cidr(mask)
    return addr, prefix_mask(family.bits if cidr is None else cidr, family)


# --- numbers ---------------------------------------------------------------------

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
