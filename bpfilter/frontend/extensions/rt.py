"""``-m rt`` (ip6t_rt): the IPv6 Routing header.

Values: ``rt-type`` int, ``rt-segsleft`` ``NumRange`` (absent = any; negated
full range kept but not printed, like 1.8.9), ``rt-len`` int (each may be
negated); ``rt-0-res`` flag; ``rt-0-addrs`` tuple of IPv6Address (at most
16); ``rt-0-not-strict`` flag. The type-0 options need ``--rt-type 0``
given before them, and ``--rt-0-not-strict`` needs ``--rt-0-addrs`` first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from bpfilter.frontend.extensions.base import (
    Extension,
    ExtensionError,
    OptionSpec,
    ParseContext,
    register,
)
from bpfilter.frontend.extensions.options import without_default
from bpfilter.frontend.extensions.types import UINT32_MAX, NumRange, parse_range_rc, parse_uint
from bpfilter.ir import Family, Option

FULL = NumRange(0, UINT32_MAX)
HOPS = 16


def _addrs(args: Sequence[str], ctx: ParseContext) -> tuple[ipaddress.IPv6Address, ...]:
    out = []
    items = args[0].split(",")
    for i, item in enumerate(items):
        if i == HOPS:
            raise ExtensionError("too many addresses specified")
        try:
            out.append(ipaddress.IPv6Address(item))
        except ValueError:
            raise ExtensionError(f"bad address: {item}") from None
    return tuple(out)


@register
class RtMatch(Extension):
    """IPv6 routing header match."""

    name = "rt"
    kind = "match"
    families = frozenset({Family.IPV6})
    options = (
        OptionSpec("rt-type", lambda a, c: parse_uint(a[0], UINT32_MAX, "rt", "rt-type"),
                   invert=True),
        OptionSpec("rt-segsleft",
                   lambda a, c: parse_range_rc(a[0], UINT32_MAX, "rt", "rt-segsleft"),
                   invert=True),
        OptionSpec("rt-len", lambda a, c: parse_uint(a[0], UINT32_MAX, "rt", "rt-len"),
                   invert=True),
        OptionSpec("rt-0-res"),
        OptionSpec("rt-0-addrs", _addrs),
        OptionSpec("rt-0-not-strict"),
    )

    def finalize(self, options: Sequence[Option], ctx: ParseContext) -> tuple[Option, ...]:
        seen: dict[str, Option] = {}
        for o in options:
            if o.name in ("rt-0-res", "rt-0-addrs"):
                t = seen.get("rt-type")
                if t is None or t.value != 0 or t.negated:
                    raise ExtensionError(f"`--rt-type 0' required before `--{o.name}'")
            if o.name == "rt-0-not-strict" and "rt-0-addrs" not in seen:
                raise ExtensionError("`--rt-0-addr ...' required before `--rt-0-not-strict'")
            seen[o.name] = o
        kept = without_default(options, "rt-segsleft", FULL)
        return super().finalize(kept, ctx)

    def save(self, options: Sequence[Option], ctx: ParseContext) -> str:
        parts = []
        for o in options:
            neg = "! " if o.negated else ""
            if o.name == "rt-segsleft":
                if o.value != FULL:
                    parts.append(f"{neg}--rt-segsleft {o.value}")
            elif o.name in ("rt-type", "rt-len"):
                parts.append(f"{neg}--{o.name} {o.value}")
            elif o.name == "rt-0-addrs":
                parts.append("--rt-0-addrs " + ",".join(str(a) for a in o.value))
            else:
                parts.append(f"--{o.name}")
        return " ".join(parts)
