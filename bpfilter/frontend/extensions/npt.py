"""IPv6 network prefix translation: DNPT and SNPT (libip6t_DNPT.c / SNPT.c, RFC 6296).

Values: ``src-pfx`` and ``dst-pfx`` are ``Address`` prefixes (both mandatory).
Kernel (ip6t_NPT): prefixes at most /64 with no host bits set; mangle table;
DNPT from PREROUTING/OUTPUT, SNPT from INPUT/POSTROUTING.
"""

from __future__ import annotations

from collections.abc import Sequence

from bpfilter.frontend.extensions.base import ExtensionError, OptionSpec, ParseContext, register
from bpfilter.frontend.extensions.placement import (
    INPUT,
    OUTPUT,
    POSTROUTING,
    PREROUTING,
    KernelPlaced,
)
from bpfilter.frontend.netparse import inet_ntop, mask_to_cidr, parse_hostmask
from bpfilter.ir import Address, Family, Option


def _prefix(opt: str):
    def parse(args: Sequence[str], ctx: ParseContext) -> Address:
        addr, mask = parse_hostmask(args[0], ctx.family, "NPT", opt)
        return Address(addr, mask)  # host bits are checked in finalize, as the kernel does

    return parse


class _NPT(KernelPlaced):
    kind = "target"
    families = frozenset({Family.IPV6})
    valid_tables = ("mangle",)
    options = (OptionSpec("src-pfx", _prefix("src-pfx")), OptionSpec("dst-pfx", _prefix("dst-pfx")))

    def complete(self, found: dict[str, Option], ctx: ParseContext) -> tuple[Option, ...]:
        for name in ("src-pfx", "dst-pfx"):
            a: Address = self.must(found, name).value
            plen = mask_to_cidr(a.mask)
            if plen is None or plen > 64 or int(a.addr) & ~int(a.mask):
                raise ExtensionError(
                    f"ip6_tables: {self.name} target: --{name} must be a prefix of at most "
                    "/64 without host bits"
                )
        return self.ordered(found.values())

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        """1.8.9 skips a prefix that is ``::/0`` (it tests the structure for zero)."""
        return " ".join(
            f"--{o.name} {inet_ntop(o.value.addr)}/{mask_to_cidr(o.value.mask)}"
            for o in options
            if int(o.value.addr) or int(o.value.mask)
        )


@register
class DNPT(_NPT):
    name = "DNPT"
    valid_hooks = frozenset({PREROUTING, OUTPUT})


@register
class SNPT(_NPT):
    name = "SNPT"
    valid_hooks = frozenset({INPUT, POSTROUTING})
