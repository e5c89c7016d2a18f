"""``-m addrtype`` (libxt_addrtype revision 1, kernel xt_addrtype).

Values: ``src-type`` / ``dst-type`` are frozensets of route type names
(ADDR_TYPES, the kernel's RTN_* order: bit i is ``1 << i``), negatable;
``limit-iface-in`` / ``limit-iface-out`` are flags (True): look the address up
only on the packet's input / output interface.

Kernel: ``--limit-iface-in`` is refused from OUTPUT/POSTROUTING,
``--limit-iface-out`` from PREROUTING/INPUT; IPv6 refuses BLACKHOLE,
BROADCAST and the types from PROHIBIT on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import parse_keyword_list
from bpfilter.frontend.extensions.placement import own_hooks
from bpfilter.ir import Family, Option

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
_V6_REFUSED = frozenset({"BLACKHOLE", "BROADCAST", "PROHIBIT", "THROW", "NAT", "XRESOLVE"})


def _types(args: Sequence[str], ctx: ParseContext) -> frozenset[str]:
    return parse_keyword_list(args[0], ADDR_TYPES, "address type")


def type_mask(types: Iterable[str]) -> int:
    """The kernel's bitmask for a set of type names."""
    return sum(1 << ADDR_TYPES.index(t) for t in types)


@register
class AddrtypeMatch(Extension):
    """Routing type of the source / destination address (local, broadcast, ...)."""

    name = "addrtype"
    kind = "match"
    options = (
        OptionSpec("src-type", _types, invert=True),
        OptionSpec("dst-type", _types, invert=True),
        OptionSpec("limit-iface-in"),
        OptionSpec("limit-iface-out"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        names = {o.name for o in options}
        if {"limit-iface-in", "limit-iface-out"} <= names:
            raise ExtensionError("addrtype: you can't specify both --limit-iface-in "
                                 "and --limit-iface-out")
        if not names & {"src-type", "dst-type"}:
            raise ExtensionError("addrtype: you must specify --src-type or --dst-type")
        if ctx.family is Family.IPV6:
            for o in options:
                bad = o.value & _V6_REFUSED if isinstance(o.value, frozenset) else set()
                if bad:
                    raise ExtensionError(f"ip6_tables: addrtype match: ipv6 {min(bad)} "
                                         "matching not supported")
        out = super().finalize(options, ctx)
        self._check(out, own_hooks(ctx), ctx.family)
        return out

    def check_rule_hooks(self, options: Sequence[Option], table: str, hooks: Iterable[str],
                         family: Family = Family.IPV4) -> None:
        self._check(options, hooks, family)

    @staticmethod
    def _check(options: Sequence[Option], hooks: Iterable[str], family: Family) -> None:
        hs = set(hooks)
        names = {o.name for o in options}
        if "limit-iface-out" in names and hs & {"PREROUTING", "INPUT"}:
            raise ExtensionError("addrtype: output interface limitation not valid in "
                                 "PREROUTING and INPUT")
        if "limit-iface-in" in names and hs & {"POSTROUTING", "OUTPUT"}:
            raise ExtensionError("addrtype: input interface limitation not valid in "
                                 "POSTROUTING and OUTPUT")

    def format_value(self, opt: Option) -> str:
        return ",".join(t for t in ADDR_TYPES if t in opt.value)
