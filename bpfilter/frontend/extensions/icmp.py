"""``-m icmp --icmp-type T[/C]`` for IPv4 (libipt_icmp, ipt_icmp), loaded by ``-p icmp``.

Value: ``IcmpType(type, code_min, code_max)``; type 255 with codes 0-255 is
"any". Names may be abbreviated to any unique prefix (case-insensitive) as
libipt_icmp allows. iptables-save prints the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.placement import require_protocol
from bpfilter.frontend.extensions.types import try_number
from bpfilter.ir import Family, Option


@dataclass(frozen=True)
class IcmpType:
    """An ICMP type and the inclusive range of codes it matches."""

    type: int
    code_min: int = 0
    code_max: int = 0xFF


ICMP_CODES: tuple[tuple[str, int, int, int], ...] = (
    ("any", 0xFF, 0, 0xFF), ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF), ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1), ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3), ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5), ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11), ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15), ("source-quench", 4, 0, 0xFF), ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1), ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3), ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF), ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF), ("ttl-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0), ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF), ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1), ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF), ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
)


@lru_cache(maxsize=1024)
def parse_icmp_type(text: str, codes: Sequence[tuple[str, int, int, int]],
                    what: str = "ICMP") -> IcmpType:
    """parse_icmp / parse_icmpv6: unique name prefix, else TYPE[/CODE] numbers."""
    found = None
    for entry in codes:
        if entry[0].lower().startswith(text.lower()):
            if found is not None:
                raise ExtensionError(f"Ambiguous {what} type `{text}': "
                                     f"`{found[0]}' or `{entry[0]}'?")
            found = entry
    if found is not None:
        return IcmpType(found[1], found[2], found[3])
    type_s, slash, code_s = text.partition("/")
    t = try_number(type_s, 0, 255)
    if t is None:
        raise ExtensionError(f"Invalid {what} type `{type_s}'")
    if not slash:
        return IcmpType(t, 0, 0xFF)
    lo_s, colon, hi_s = code_s.partition(":")
    lo = try_number(lo_s, 0, 255)
    hi = try_number(hi_s, 0, 255) if colon else lo
    if lo is None or hi is None:
        raise ExtensionError(f"Invalid {what} code `{code_s}'")
    return IcmpType(t, lo, hi)


def save_icmp_type(flag: str, opt: Option, any_hack: bool) -> str:
    """icmp_save / icmp6_save: number, '/code' unless all codes; 'any' for type 255."""
    it: IcmpType = opt.value
    neg = "! " if opt.negated else ""
    if any_hack and it.type == 0xFF:
        return f"{neg}--{flag} any"
    text = f"{neg}--{flag} {it.type}"
    if it.code_min != 0 or it.code_max != 0xFF:
        text += f"/{it.code_min}"
    return text


@register
class IcmpMatch(Extension):
    """ICMP type/code; the kernel wants ``-p icmp`` (not negated)."""

    name = "icmp"
    kind = "match"
    families = frozenset({Family.IPV4})
    options = (OptionSpec("icmp-type", lambda a, c: parse_icmp_type(a[0], ICMP_CODES),
                          invert=True),)

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        require_protocol(ctx, 1, "icmp match")
        if not options:
            raise ExtensionError('icmp: option "--icmp-type" must be specified')
        return tuple(options)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        return " ".join(save_icmp_type("icmp-type", o, True) for o in options)
