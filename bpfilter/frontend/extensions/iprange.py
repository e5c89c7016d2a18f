"""``-m iprange`` (libxt_iprange revision 1, kernel xt_iprange).

Values: ``src-range`` / ``dst-range``: ``AddrRange(lo, hi)`` (inclusive, both
IPv4Address or both IPv6Address), negatable. A reversed range is kept as
written (the kernel warns and it never matches).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionParser,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.netparse import inet_ntop, ipv4_numeric, ipv6_numeric
from bpfilter.ir import Family, IPAddress, Option


@dataclass(frozen=True)
class AddrRange:
    """Inclusive address range."""

    lo: IPAddress
    hi: IPAddress

    def __str__(self) -> str:
        return f"{inet_ntop(self.lo)}-{inet_ntop(self.hi)}"

    def contains(self, ip: IPAddress) -> bool:
        return int(self.lo) <= int(ip) <= int(self.hi)


def _addr(text: str, family: Family, opt: str) -> IPAddress:
    if family is Family.IPV4:
        v = ipv4_numeric(text, False)
        if v is not None:
            return ipaddress.IPv4Address(v)
    else:
        v = ipv6_numeric(text)
        if v is not None:
            return ipaddress.IPv6Address(v)
    raise ExtensionError(f'iprange: Bad value for "--{opt}" option: "{text}"')


def _range(opt: str) -> OptionParser:
    def parse(args: Sequence[str], ctx: ParseContext) -> AddrRange:
        lo_s, sep, hi_s = args[0].partition("-")
        lo = _addr(lo_s, ctx.family, opt)
        hi = _addr(hi_s, ctx.family, opt) if sep else lo
        return AddrRange(lo, hi)

    return parse


@register
class IprangeMatch(Extension):
    """Source and/or destination address within an inclusive range."""

    name = "iprange"
    kind = "match"
    options = (
        OptionSpec("src-range", _range("src-range"), invert=True),
        OptionSpec("dst-range", _range("dst-range"), invert=True),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        if not options:
            raise ExtensionError("iprange match: You must specify `--src-range' or `--dst-range'")
        return super().finalize(options, ctx)
